"""Image folders: the original tool's dataset layout and RGB-D image pairs."""
