"""Valt's ``hls`` transport: live HLS built from the camera's shared fMP4 fragments."""
