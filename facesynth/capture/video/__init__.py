"""A plain video file or a webcam: colour frames, and depth estimated from mediapipe's face mesh
(mesh_depth.py: the mesh rasterised over its triangles, metric scale from the iris or a given
interpupillary distance); the readers (video_file.py, webcam.py) and capture.video (nodes.py)."""
