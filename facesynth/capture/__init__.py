"""Capture stage: one sub-package per device family (kinect/, folder/, portrait/, synthetic/), each with
its reader and node, and beside them what they share: the writer every source uses (source.py), the
capture gate, recording identity and JPEG checks."""
