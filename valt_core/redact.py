"""Secrets out of text: the one redaction every message, log line and event goes through.

Camera URLs carry credentials (``rtsp://user:password@host/...``), FFmpeg and drivers quote
those URLs in their errors, and live tokens travel in query strings. :func:`redact` masks
passwords in URLs and the values of secret-looking query parameters; :func:`scrub` also
masks known secret values wherever they appear. :class:`ValtError` redacts its message when it
is made, and :class:`RedactingFilter` does the same for every log record.
"""

from __future__ import annotations

import logging
import re
from typing import Iterable
from urllib.parse import quote

MASK = "***"

# scheme://user:password@  or  scheme://token@ (the whole userinfo when there is no colon)
_USERINFO = re.compile(r"([a-z][a-z0-9+.-]*://)([^@/\s:]*)(:[^@/\s]*)?@", re.IGNORECASE)
_SECRET_PARAM = re.compile(r"((?:^|[?&;\s])(?:token|password|passwd|pwd|pass|secret|key|api_key|auth|"
                           r"signature|sig)=)([^&\s\"']+)", re.IGNORECASE)


def _userinfo(match: re.Match[str]) -> str:
    scheme, user, password = match.group(1), match.group(2), match.group(3)
    if password is None:
        return f"{scheme}{MASK}@" if user else match.group(0)
    return f"{scheme}{user}:{MASK}@"


def redact(text: str) -> str:
    """``text`` with passwords in URLs and secret query values replaced by ``***``.

    ``rtsp://camuser:S3cret%21@10.0.0.9/stream1`` becomes ``rtsp://camuser:***@10.0.0.9/stream1``.
    """
    if not text:
        return text
    return _SECRET_PARAM.sub(lambda m: m.group(1) + MASK, _USERINFO.sub(_userinfo, text))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """:func:`redact`, and every given secret value (as typed or URL-encoded) masked too."""
    out = redact(text)
    for secret in secrets:
        if secret and len(secret) >= 3:
            for form in {secret, quote(secret, safe=""), quote(secret)}:
                out = out.replace(form, MASK)
    return out


class RedactingFilter(logging.Filter):
    """A log filter that redacts each record's message (installed on the log handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the record's message with its redacted form; always keeps the record."""
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is the logger's problem, not ours
            return True
        cleaned = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks quote exception texts; render them now so the text can be redacted.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add a :class:`RedactingFilter` to every handler of ``logger`` (default: the root logger)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
