"""Valt's ``rtsp`` camera plugin: any camera that serves RTSP, given its URL (and credentials)."""
