"""iPhone TrueDepth portrait photos (HEIC or MPO JPEG with a depth map)."""
