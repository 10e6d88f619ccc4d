"""Schemathesis hooks for tests/test_openapi_fuzz.py (loaded through ``SCHEMATHESIS_HOOKS``).

The tus routes take ``application/offset+octet-stream`` bodies (raw bytes), a media type
schemathesis has no serializer for: this sends the generated value as bytes.
"""

import schemathesis


@schemathesis.serializer("application/offset+octet-stream")
def tus_bytes(_ctx, value):
    """The generated body as raw bytes."""
    if isinstance(value, bytes):
        return {"data": value}
    return {"data": str(value).encode("utf-8")}
