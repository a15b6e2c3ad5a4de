"""Capture stage: Azure Kinect recordings and devices, calibration, registration, image folders,
iPhone TrueDepth portraits, the capture gate, and their source nodes (nodes.py)."""
