"""Valt's ``onvif`` camera plugin: ONVIF devices through onvif-zeep-async, found by WS-Discovery.

``device.py`` holds the protocol code (SOAP calls and their error mapping), ``discovery.py``
the WS-Discovery probe; ``driver.py`` is the thin :class:`~valt_core.cameras.CameraDriver`.
"""
