"""Valt's ``local`` storage plugin: recordings as files under one directory."""
