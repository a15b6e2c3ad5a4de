"""Depth stage: colour-guided hole filling of the cropped depth (fill.py) and its node (nodes.py)."""
