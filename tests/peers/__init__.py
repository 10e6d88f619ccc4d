"""Real peers the tests start: an RTSP camera (GStreamer) and helpers around them."""
