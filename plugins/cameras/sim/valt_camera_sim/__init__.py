"""Valt's ``sim`` camera plugin: a simulated camera that produces real H.264 (and AAC) video.

The picture is a moving test pattern with the wall clock burned in; the audio a tone that
beeps for the first 100 ms of every second. Downstream of ingest it is indistinguishable
from a network camera, so everything built on it handles real video.
"""
