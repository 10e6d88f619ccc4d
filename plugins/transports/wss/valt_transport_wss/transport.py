"""The ``wss`` transport.

Protocol on ``/live/{camera_id}/ws?token=...``: one text message
``{"type": "init", "mime": "video/mp4; codecs=\\"...\\"", "transcoding": [...], "profile": "main"}``, then binary
messages: the init segment, then media fragments (one frame each). The text message comes
again if the stream restarts with other parameters. A missing, forged or expired token closes
the socket with code 4401 (4403 for another camera's token or a role that may not watch, 4404
for an unknown camera, 4409 for a disabled one) and a reason a person can read. A socket whose
access ends while it plays (signed out, user disabled, camera disabled) closes with 4401 and
the reason.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from quart import Blueprint, websocket

from valt_core.errors import Conflict, Forbidden, NotFound, ValtError
from valt_core.transports import Transport
from valt_core.transports.base import LiveHost

from .config import WssConfig

CLOSE_CODES = {Forbidden: 4403, NotFound: 4404, Conflict: 4409}


def close_code(err: ValtError) -> int:
    """The WebSocket close code for a refused opening: 4000 + the HTTP status it stands for."""
    for kind, code in CLOSE_CODES.items():
        if isinstance(err, kind):
            return code
    return 4401


def decline_websocket_compression() -> None:
    """Make hypercorn decline the permessage-deflate extension browsers offer on every WebSocket.

    Video is compressed already: deflating it saves no bytes, and measured on the live
    benchmark it took a third of the server's CPU with 100 viewers. Hypercorn has no setting
    for it, so its handshake is given a deflate extension that always declines (RFC 7692 lets
    a server refuse the offer; the client then sends and receives plain frames). It applies to
    the whole server process, whose only WebSockets are live media.
    """
    from hypercorn.protocol import ws_stream

    if getattr(ws_stream.PerMessageDeflate, "valt_declines", False):
        return

    class DeclinedDeflate(ws_stream.PerMessageDeflate):  # type: ignore[misc,valid-type]
        valt_declines = True

        def accept(self, offer: str) -> None:
            return None

    ws_stream.PerMessageDeflate = DeclinedDeflate


class WssTransport(Transport):
    """Live fMP4 over WebSocket."""

    name = "wss"
    Config = WssConfig
    config: WssConfig

    def viewer_url(self, camera_id: int, token: str) -> str:
        """``/live/{camera_id}/ws?token=...``"""
        return f"/live/{camera_id}/ws?token={quote(token, safe='')}"

    def blueprint(self, host: LiveHost) -> Blueprint:
        """The WebSocket route."""
        decline_websocket_compression()
        bp = Blueprint("transport_wss", __name__)
        queue = self.config.queue_fragments

        @bp.websocket("/live/<int:camera_id>/ws")
        async def live_ws(camera_id: int):
            """Stream a camera to one viewer."""
            await websocket.accept()
            try:
                claims = await host.authorize(websocket.args.get("token", ""), camera_id, "wss",
                                              websocket.remote_addr or "")
                stream = await host.live_stream(camera_id)
            except ValtError as err:
                await websocket.close(close_code(err), err.message)
                return
            viewer = host.watch(claims, stream, queue, "wss")
            try:
                while True:
                    kind, payload, arrival, _keyframe = await viewer.next()
                    if kind == "init":
                        mime, data = payload
                        await websocket.send(json.dumps({"type": "init", "mime": mime,
                                                         "transcoding": stream.transcoding,
                                                         "profile": stream.profile}))
                        await websocket.send(data)
                    else:
                        await websocket.send(payload)
                        viewer.sent(arrival)
            except ConnectionError:
                if viewer.close_reason:
                    # Closed on purpose (signed out, access changed, camera disabled): say why.
                    await websocket.close(4401, viewer.close_reason)
                else:
                    await websocket.close(1001, "the live stream stopped")
            finally:
                host.unwatch(stream, viewer)

        return bp
