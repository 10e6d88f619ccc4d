"""Valt's ``axis`` camera plugin: Axis network cameras through VAPIX, found by SSDP.

``vapix.py`` holds the protocol code (HTTP with digest auth, the CGIs and their answers),
``discovery.py`` the SSDP search; ``driver.py`` is the thin camera driver.
"""
