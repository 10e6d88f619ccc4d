"""The VAPIX protocol side: HTTP requests to an Axis camera and their answers as Python values.

Written from Axis's published VAPIX documentation. Every ``/axis-cgi/`` request uses HTTP
digest authentication. The CGIs answer in three styles, each read here:

- JSON APIs (``basicdeviceinfo.cgi``, ``streamprofile.cgi``): ``{"data": ...}`` or ``{"error": {...}}``;
- ``param.cgi``: ``root.Group.Name=value`` lines, or ``# Error: ...``;
- ``ptz.cgi`` / ``ptzconfig.cgi``: ``204 No Content`` on success, ``200 Error:<message>`` on failure,
  and ``key=value`` lines for queries.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from valt_core.errors import CameraAuthFailed, CameraError, CameraUnreachable, NotFound, NotSupported

log = logging.getLogger(__name__)

#: Largest snapshot accepted (a 4K JPEG is well under this).
MAX_JPEG_BYTES = 16 * 1024 * 1024


class VapixClient:
    """An HTTP session with one Axis camera."""

    def __init__(self, host: str, port: int, username: str, password: str, timeout_s: float = 8.0) -> None:
        host_part = f"[{host}]" if ":" in host else host
        self.where = f"{host}:{port}"
        self._http = httpx.AsyncClient(base_url=f"http://{host_part}:{port}",
                                       auth=httpx.DigestAuth(username, password), timeout=timeout_s)

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; network failures, refused credentials and missing CGIs become Valt errors."""
        try:
            r = await self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.TimeoutException, httpx.NetworkError) as err:
            raise CameraUnreachable(f"the Axis camera at {self.where} does not answer ({type(err).__name__})") from err
        except httpx.HTTPError as err:
            raise CameraError(f"talking to the Axis camera at {self.where} failed: {err}") from err
        if r.status_code == 401:
            raise CameraAuthFailed(f"the Axis camera at {self.where} refused the user name or password")
        if r.status_code == 403:
            raise CameraAuthFailed(f"the Axis camera at {self.where} does not let this user do that "
                                   "(an operator or administrator account is needed)")
        if r.status_code == 404:
            raise NotSupported(f"the Axis camera at {self.where} has no {path}")
        if r.status_code >= 400:
            raise CameraError(f"the Axis camera at {self.where} answered HTTP {r.status_code} to {path}")
        return r

    async def json_api(self, path: str, method: str, params: dict[str, Any] | None = None,
                       version: str = "1.0") -> Any:
        """Call a VAPIX JSON API method; its ``data``, or a :class:`CameraError` with the camera's message."""
        body: dict[str, Any] = {"apiVersion": version, "method": method}
        if params is not None:
            body["params"] = params
        r = await self.request("POST", path, json=body)
        try:
            answer = r.json()
        except ValueError as err:
            raise CameraError(f"the Axis camera at {self.where} sent no JSON from {path}") from err
        if "error" in answer:
            err = answer["error"]
            raise CameraError(f"the Axis camera at {self.where} refused {method}: "
                              f"{err.get('message', '')} (code {err.get('code')})")
        return answer.get("data", {})

    async def device_info(self) -> dict[str, str]:
        """Basic device information: Brand, ProdNbr, ProdFullName, SerialNumber, Version, ..."""
        data = await self.json_api("/axis-cgi/basicdeviceinfo.cgi", "getAllProperties")
        return {str(k): str(v) for k, v in data.get("propertyList", {}).items()}

    async def params(self, *groups: str) -> dict[str, str]:
        """Parameters of ``groups`` (e.g. ``Properties.PTZ``), keyed without the ``root.`` prefix.

        A group the camera does not have is simply missing from the answer.
        """
        query = {"action": "list"}
        if groups:
            query["group"] = ",".join(f"root.{g}" for g in groups)
        r = await self.request("GET", "/axis-cgi/param.cgi", params=query)
        out = {}
        for line in r.text.splitlines():
            if line.startswith("#") or "=" not in line:
                continue
            key, _, value = line.partition("=")
            out[key.removeprefix("root.")] = value
        return out

    async def stream_profiles(self) -> list[dict[str, str]]:
        """The camera's stream profiles: ``name``, ``description``, ``parameters``."""
        data = await self.json_api("/axis-cgi/streamprofile.cgi", "list", {"streamProfileName": []})
        return list(data.get("streamProfile", []))

    async def ptz(self, cgi: str = "ptz.cgi", **args: str | int | float) -> str:
        """A ``ptz.cgi`` or ``ptzconfig.cgi`` request; the text answer (empty for 204).

        Axis answers a refused command with ``200`` and ``Error:<message>``: raised here as
        :class:`NotFound` for an unknown preset, else :class:`CameraError`.
        """
        query = {"camera": "1", **{k: _arg(v) for k, v in args.items()}}
        r = await self.request("GET", f"/axis-cgi/com/{cgi}", params=query)
        body = r.text.strip()
        if body.startswith("Error"):
            message = body.partition(":")[2].strip() or body
            if "preset" in message and "unknown value" in message:
                raise NotFound(f"the Axis camera at {self.where} has no such preset ({message})")
            raise CameraError(f"the Axis camera at {self.where} refused the PTZ command: {message}")
        return body

    async def snapshot(self, resolution: str | None = None) -> bytes:
        """A JPEG from ``image.cgi``."""
        r = await self.request("GET", "/axis-cgi/jpg/image.cgi",
                               params={"resolution": resolution} if resolution else None)
        if not r.headers.get("content-type", "").startswith("image/jpeg") or len(r.content) > MAX_JPEG_BYTES:
            raise CameraError(f"the Axis camera at {self.where} sent no JPEG ({r.headers.get('content-type')})")
        return r.content

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._http.aclose()


def _arg(value: str | int | float) -> str:
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)


def key_values(text: str) -> dict[str, str]:
    """``key=value`` lines (a PTZ query answer) as a dict."""
    return {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in text.splitlines()) if _}
