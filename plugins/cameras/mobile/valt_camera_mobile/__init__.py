"""The ``mobile`` camera driver: a phone or tablet that pushes its camera to Valt (RTMP/RTMPS)."""
