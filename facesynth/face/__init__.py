"""Face stage: mediapipe landmarks mapped to the 70-point layout, crop and depth normalisation,
landmark drawing, point clouds, RGBD output conversion, and the face nodes (nodes.py)."""
