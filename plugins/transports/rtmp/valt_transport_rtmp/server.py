"""One RTMP publisher connection, spoken with pyrtmp (no Valt imports here besides the push contract).

pyrtmp parses the handshake, chunks and AMF commands. Its ``pyrtmp.rtmp`` module is not used: on
import it turns the whole process's logging to DEBUG, and its loggers would print each command
(the stream key among them); the few replies a publisher needs are sent here instead.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from bitstring import BitStream
from pyrtmp import StreamClosedException
from pyrtmp.amf.serializers import AMF0Serializer
from pyrtmp.messages import Chunk
from pyrtmp.messages.command import NCConnect, NCCreateStream, NSCloseStream, NSDeleteStream, NSPublish
from pyrtmp.messages.data import MetaDataMessage
from pyrtmp.messages.factory import MessageFactory
from pyrtmp.messages.protocol_control import SetChunkSize, SetPeerBandwidth, WindowAcknowledgementSize
from pyrtmp.messages.user_control import StreamBegin
from pyrtmp.session_manager import SessionManager

log = logging.getLogger(__name__)
AUDIO, VIDEO = 8, 9
#: pyrtmp's loggers, set to DEBUG by pyrtmp itself; quietened before the first connection.
PYRTMP_LOGGERS = ("pyrtmp", "pyrtmp.messages", "pyrtmp.messages.command", "pyrtmp.messages.data",
                  "pyrtmp.messages.user_control")


def quieten_pyrtmp() -> None:
    """Keep pyrtmp's loggers at ERROR: at DEBUG they print whole messages, stream keys included, and
    at WARNING every ``releaseStream``/``FCPublish`` a publisher sends (which need no answer)."""
    for name in PYRTMP_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


class _Session(SessionManager):
    """pyrtmp's session with RTMP's timestamp rule for chunk type 3 fixed.

    A type 3 chunk that starts a new message repeats the previous message's timestamp *delta*
    (FFmpeg sends one for equal-size frames at a steady rate); pyrtmp repeats the timestamp itself,
    which would stamp two frames with the same instant.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader=reader, writer=writer)
        self._delta: dict[int, int] = {}
        self._msg_ts: dict[int, int] = {}

    async def read_raw_chunk(self) -> Any:
        """The next raw chunk, its timestamp corrected (see the class)."""
        chunk = await super().read_raw_chunk()
        cs = chunk.chunk_id
        if chunk.raw_chunk_number == 0:  # the first chunk of a message
            if chunk.chunk_type == 0:
                self._delta[cs] = chunk.timestamp
            elif chunk.chunk_type in (1, 2):
                self._delta[cs] = chunk.timestamp - self._msg_ts.get(cs, 0)
            elif chunk.chunk_type == 3 and cs in self._msg_ts:
                chunk.timestamp = self._msg_ts[cs] + self._delta.get(cs, 0)
            self._msg_ts[cs] = chunk.timestamp
        return chunk


def _on_status(stream_id: int, level: str, code: str, description: str) -> Chunk:
    data = BitStream()
    AMF0Serializer.create_object(data, "onStatus")
    AMF0Serializer.create_object(data, 0)
    AMF0Serializer.create_object(data, None)
    AMF0Serializer.create_object(data, {"level": level, "code": code, "description": description})
    return Chunk(chunk_type=0, chunk_id=3, timestamp=0, msg_length=len(data.bytes), msg_type_id=0x14,
                 msg_stream_id=stream_id, payload=data.bytes)


#: ``on_publish(app, key, close)``: a publication (``tag``, ``set_metadata``, ``close``) for the
#: publish, or a string saying why it is refused. ``close`` drops this connection (a takeover).
OnPublish = Callable[[str, str, Callable[[], None]], Awaitable[Any]]


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, on_publish: OnPublish,
                           handshake_timeout_s: float, idle_timeout_s: float) -> None:
    """Serve one RTMP connection until it ends, is refused or goes silent."""
    session = _Session(reader, writer)
    publication: Any = None
    try:
        await asyncio.wait_for(session.handshake(), handshake_timeout_s)
        chunks = session.read_chunks_from_stream().__aiter__()
        app = ""
        while True:
            # Until publishing begins the handshake time limit applies, then the idle one.
            timeout = idle_timeout_s if publication is not None else handshake_timeout_s
            chunk = await asyncio.wait_for(chunks.__anext__(), timeout)
            kind = chunk.msg_type_id
            if kind in (AUDIO, VIDEO):
                if publication is not None:
                    publication.tag(kind, chunk.timestamp, chunk.payload)
                continue
            try:
                message = MessageFactory.from_chunk(chunk)
            except (NotImplementedError, ValueError, KeyError, IndexError):
                continue  # a message type a publisher does not need (AMF3, shared objects)
            if isinstance(message, SetChunkSize):
                session.reader_chunk_size = message.chunk_size
            elif isinstance(message, NCConnect):
                app = str((message.command_object or {}).get("app", "")).strip("/")
                session.write_chunk_to_stream(WindowAcknowledgementSize(ack_window_size=5000000))
                session.write_chunk_to_stream(SetPeerBandwidth(ack_window_size=5000000, limit_type=2))
                session.write_chunk_to_stream(StreamBegin(stream_id=0))
                session.write_chunk_to_stream(SetChunkSize(chunk_size=8192))
                session.writer_chunk_size = 8192
                session.write_chunk_to_stream(message.create_response())
                await session.drain()
            elif isinstance(message, NCCreateStream):
                session.write_chunk_to_stream(message.create_response())
                await session.drain()
            elif isinstance(message, NSPublish):
                key = str(message.publishing_name or "")
                result = await on_publish(app, key, writer.transport.abort)
                if isinstance(result, str):
                    session.write_chunk_to_stream(_on_status(message.msg_stream_id, "error",
                                                             "NetStream.Publish.BadName", result))
                    await session.drain()
                    return
                publication = result
                session.write_chunk_to_stream(StreamBegin(stream_id=1))
                session.write_chunk_to_stream(message.create_response())
                await session.drain()
            elif isinstance(message, MetaDataMessage):
                if publication is not None:
                    publication.set_metadata(message.to_raw_meta())
            elif isinstance(message, (NSCloseStream, NSDeleteStream)):
                if publication is not None:
                    publication.close()
                    publication = None
    except (StreamClosedException, asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError,
            StopAsyncIteration, OSError):
        pass  # the publisher went away (or stalled): its camera waits out the grace window
    except Exception as err:  # noqa: BLE001 - a malformed stream ends its own connection only
        log.warning("rtmp: connection from %s ended on a protocol error: %s", _peer(writer),
                    type(err).__name__)
    finally:
        if publication is not None:
            publication.close()
        writer.close()


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""
