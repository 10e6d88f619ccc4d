"""The JSON API under ``/api/v1``."""

from quart import Blueprint

api = Blueprint("api", __name__, url_prefix="/api/v1")

# The route modules add their views to ``api`` when imported.
from . import audit, auth, cameras, groups, markers, recordings, review, rooms, servers, shares, system, uploads, users  # noqa: E402,F401

__all__ = ["api"]
