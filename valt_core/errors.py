"""One error tree for Valt, and the one place that maps it to HTTP answers.

Drivers catch vendor and library exceptions at their edge and re-raise one of these with
``raise ... from err``, so the API and the CLI can show a clear message.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .redact import redact


class ValtError(Exception):
    """Root of every error Valt raises on purpose.

    ``http_status`` and ``code`` say how the API answers it; ``message`` is shown to people,
    so it must never contain a secret.
    """

    http_status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        # Messages quote URLs and library errors, which carry credentials: redact at the source,
        # so no API answer, log line or CLI message can show one.
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.details = {k: _redacted(v) for k, v in details.items()}

    def headers(self) -> dict[str, str]:
        """HTTP headers that go with the answer (``Retry-After`` when the error says when)."""
        retry = self.details.get("retry_after_s")
        return {"Retry-After": str(int(retry))} if retry is not None else {}

    def to_json(self) -> dict[str, Any]:
        """The JSON body the API answers for this error."""
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class ConfigError(ValtError):
    """The settings are wrong: unknown key, wrong type, unknown driver."""

    code = "config_error"


class PluginError(ValtError):
    """A plugin failed to load, or two plugins claim one name."""

    code = "plugin_error"


class DatabaseError(ValtError):
    """The database cannot be reached or is not at the expected schema."""

    http_status = 503
    code = "database_unavailable"


class ValidationFailed(ValtError):
    """The request body or parameters are not valid."""

    http_status = 400
    code = "invalid_request"


class NotAuthenticated(ValtError):
    """No valid credentials were presented."""

    http_status = 401
    code = "not_authenticated"


class LoginFailed(NotAuthenticated):
    """Wrong user name or password (deliberately not saying which)."""

    code = "login_failed"


class TooManyAttempts(ValtError):
    """The caller is over a rate limit; ``retry_after_s`` says when to try again."""

    http_status = 429
    code = "too_many_attempts"


class ServiceBusy(ValtError):
    """The server is at a bound of its own (e.g. concurrent password checks); retry shortly."""

    http_status = 503
    code = "busy"


class DirectoryUnavailable(ValtError):
    """A directory or identity provider an auth backend needs cannot be reached (or refuses
    Valt's own account): no one can be checked, which is not a wrong password."""

    http_status = 503
    code = "directory_unavailable"


class Forbidden(ValtError):
    """The caller is known but lacks the right for this action."""

    http_status = 403
    code = "forbidden"


class NotFound(ValtError):
    """The addressed object does not exist (or the caller may not know it does)."""

    http_status = 404
    code = "not_found"


class Conflict(ValtError):
    """The request clashes with the current state, e.g. a name already taken."""

    http_status = 409
    code = "conflict"


class Gone(ValtError):
    """The object existed and has ended for good (an upload that expired)."""

    http_status = 410
    code = "gone"


class PreconditionFailed(ValtError):
    """A protocol version or precondition the request states is not one the server serves."""

    http_status = 412
    code = "precondition_failed"


class TooLarge(ValtError):
    """The request asks for more bytes than a limit or a quota allows."""

    http_status = 413
    code = "too_large"


class UnplayableVideo(ValtError):
    """An uploaded file is not a video Valt can record: not a media file, or no usable video track."""

    http_status = 422
    code = "not_a_playable_video"


class ChecksumMismatch(ValtError):
    """The bytes sent do not have the checksum the client said (tus: 460, nothing appended)."""

    http_status = 460
    code = "checksum_mismatch"


class CameraDisabled(Conflict):
    """The camera is disabled: no ingest, no live view, no snapshot until it is enabled."""

    code = "camera_disabled"


class CameraError(ValtError):
    """Base for errors a camera driver reports."""

    http_status = 502
    code = "camera_error"


class CameraUnreachable(CameraError):
    """The camera does not answer on the network."""

    code = "camera_unreachable"


class CameraAuthFailed(CameraError):
    """The camera refused the configured credentials."""

    code = "camera_auth_failed"


class NotSupported(ValtError):
    """The driver or device does not offer this capability."""

    http_status = 501
    code = "not_supported"


class StorageError(ValtError):
    """The storage backend failed to read, write or delete."""

    http_status = 507
    code = "storage_error"


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v) for v in value]
    return value


def validation_problems(err: Any, unknown: str = "unknown setting") -> dict[str, str]:
    """``{"dotted.key": "what is wrong"}`` for a pydantic ``ValidationError``, worded for people.

    ``unknown`` is what an unexpected key is called ("unknown setting", "unknown field").
    """
    problems: dict[str, str] = {}
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = unknown if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, ")
        problems[key] = msg
    return problems
