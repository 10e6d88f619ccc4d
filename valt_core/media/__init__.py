"""The media engine: camera ingest, recording, playback and clips (PyAV, stream copy)."""
