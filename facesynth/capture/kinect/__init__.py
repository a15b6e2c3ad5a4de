"""Azure Kinect: MKV recordings (own Matroska walker, image checks), calibration, registration, the live device."""
