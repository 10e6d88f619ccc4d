"""Valt core: the app factory, settings, database models, hook specifications and plugin host.

Importing this package does no work; :func:`valt_core.app.create_app` builds everything.
"""

__version__ = "0.1.0"

from .hookspecs import hookimpl  # noqa: E402 - the marker plugins decorate their hooks with

__all__ = ["__version__", "hookimpl"]
