"""The JSON API under ``/api/v1``."""

from quart import Blueprint

api = Blueprint("api", __name__, url_prefix="/api/v1")

# The route modules add their views to ``api`` when imported.
from . import (  # noqa: E402,F401
    audit,
    auth,
    cameras,
    devices,
    groups,
    markers,
    recordings,
    review,
    rooms,
    servers,
    shares,
    system,
    uploads,
    users,
)

__all__ = ["api"]
