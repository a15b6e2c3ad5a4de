"""Intel RealSense cameras (pyrealsense2): live or recorded, depth aligned to colour by the SDK."""
