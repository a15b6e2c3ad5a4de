"""The embedded synthetic camera: a procedural talking head rendered to colour + metric depth
(head.py), its shape and texture (face_model.py, face_features.py) and its source node (nodes.py)."""
