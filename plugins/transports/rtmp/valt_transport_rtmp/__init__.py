"""The ``rtmp`` ingest transport: phones and encoders publish RTMP or RTMPS to the media server."""
