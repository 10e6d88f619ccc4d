"""The ``wss`` transport.

Protocol on ``/live/{camera_id}/ws?token=...``: one text message
``{"type": "init", "mime": "video/mp4; codecs=\\"...\\"", "transcoding": [...], "profile": "main"}``, then binary
messages: the init segment, then media fragments (one frame each). The text message comes
again if the stream restarts with other parameters. A missing, forged or expired token closes
the socket with code 4401 (4403 for another camera's token, 4404 for an unknown camera) and a
reason a person can read.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from quart import Blueprint, websocket

from valt_core.errors import Forbidden, NotFound, ValtError
from valt_core.transports import Transport
from valt_core.transports.base import LiveHost

from .config import WssConfig

CLOSE_CODES = {Forbidden: 4403, NotFound: 4404}


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
                host.check_token(websocket.args.get("token", ""), camera_id)
                stream = await host.live_stream(camera_id)
            except ValtError as err:
                await websocket.close(CLOSE_CODES.get(type(err), 4401), err.message)
                return
            viewer = stream.add_viewer(queue)
            try:
                while True:
                    kind, payload, arrival, _keyframe = await viewer.next()
                    if kind == "init":
                        mime, data = payload
                        await websocket.send(json.dumps({"type": "init", "mime": mime,
                                                         "transcoding": stream.transcoding,
                                                         "profile": stream.pipeline.profile}))
                        await websocket.send(data)
                    else:
                        await websocket.send(payload)
                        viewer.sent(arrival)
            except ConnectionError:
                await websocket.close(1001, "the live stream stopped")
            finally:
                stream.remove_viewer(viewer)

        return bp
