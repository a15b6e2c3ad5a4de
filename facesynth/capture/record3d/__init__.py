"""iPhone depth through the Record3D app: its exports (.r3d or unzipped) and its live USB stream."""
