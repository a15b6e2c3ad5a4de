"""Live stage: the wire protocol (protocol.py), live landmark sources (source_nodes.py) and the
generator and outputs serving RGBD frames to VR clients (output_nodes.py)."""
