"""What a media server's NATS credentials allow, against a real nats-server with the permissions
``valt nats-config`` writes (``media_server_permissions``): its own work, and nothing that would let
a compromised media server read or silence the others."""

from __future__ import annotations

import asyncio

import nats
import pytest

from valt_core.bus.base import BusPermissionDenied, BusUnavailable
from valt_core.mediaserver import media_server_permissions

from .peers.nats import NatsUser, PrivateNats
from .test_bus import nats_bus

PREFIX = "valt"


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory):
    perms = media_server_permissions("ms1", PREFIX)
    users = [NatsUser("app", password="app pw"),
             NatsUser("ms1", password="ms1 pw", publish=perms["publish"]["allow"],
                      deny_publish=perms["publish"]["deny"], subscribe=perms["subscribe"]["allow"])]
    server = PrivateNats(tmp_path_factory.mktemp("nats-perms"), users=users)
    yield server
    server.stop()


async def test_a_media_server_does_its_work_and_no_more(nats_server) -> None:
    media = nats_bus(nats_server.url, user="ms1", password="ms1 pw", prefix=PREFIX, name="valt-media-ms1")
    app = nats_bus(nats_server.url, user="app", password="app pw", prefix=PREFIX, name="valt-app")
    await media.start()
    await app.start()
    try:
        # Before the app server made the buckets, the media server waits: it may not make them.
        with pytest.raises(BusUnavailable, match="does not exist yet"):
            await media.key_value("leases", ttl_s=4)
        await app.key_value("leases", ttl_s=4)
        await app.key_value("owners")
        await app.key_value("presence", ttl_s=4)
        seen: list[bytes] = []

        async def index(msg) -> None:
            seen.append(msg.data)

        await app.consume_durable("valt.index.>", "valt-index", index)  # makes the index stream

        # Its own work: its server lease, a camera, its presence, its events.
        leases = await media.key_value("leases", ttl_s=4)
        revision = await leases.create("server-ms1", b"epoch-1")
        assert await leases.update("server-ms1", b"epoch-1", revision) > revision
        owners = await media.key_value("owners")
        revision = await owners.create("camera-1", b"ms1 epoch-1")
        assert await owners.update("camera-1", b"ms1 epoch-1", revision) > revision
        assert (await owners.get("camera-1")).value == b"ms1 epoch-1"
        presence = await media.key_value("presence", ttl_s=4)
        await presence.put("ms1", b"{}")
        await media.publish_durable("valt.index.ms1", b"segment", msg_id="ms1:e:1")
        for _ in range(50):
            if seen:
                break
            await asyncio.sleep(0.05)
        assert seen == [b"segment"]

        # Not another server's events, lease or presence.
        with pytest.raises(BusPermissionDenied):
            await media.publish_durable("valt.index.ms2", b"forged", msg_id="ms2:e:1")
        with pytest.raises(BusPermissionDenied):
            await leases.put("server-ms2", b"forged epoch")
        with pytest.raises(BusPermissionDenied):
            await presence.put("ms2", b"{}")
    finally:
        await media.close()
        await app.close()


async def test_a_media_server_cannot_capture_commands_or_silence_the_index(nats_server) -> None:
    refused: list[str] = []

    async def error(err: Exception) -> None:
        refused.append(str(err).lower())

    nc = await nats.connect(nats_server.url, user="ms1", password="ms1 pw", error_cb=error,
                            allow_reconnect=False)
    app = await nats.connect(nats_server.url, user="app", password="app pw")
    try:
        js = nc.jetstream(timeout=1.0)
        # A stream capturing every server's commands would keep their cameras' passwords.
        with pytest.raises(Exception):  # noqa: B017 - refused by the server: no answer, or an error
            await js.add_stream(name="CAPTURE", subjects=["valt.media.>"])
        with pytest.raises(nats.js.errors.NotFoundError):
            await app.jetstream().stream_info("CAPTURE")
        # Nor a consumer of the index stream, nor acknowledging the app server's messages for it.
        with pytest.raises(Exception):  # noqa: B017
            await js.add_consumer(f"{PREFIX}_INDEX", durable_name="thief")
        await nc.publish("$JS.ACK.valt_INDEX.valt-index.1.1.1.0.0", b"+ACK")
        await nc.flush()
        for _ in range(20):
            if sum("permissions violation" in r for r in refused) >= 3:
                break
            await asyncio.sleep(0.05)
        violations = [r for r in refused if "permissions violation" in r]
        assert any("$js.api.stream.create.capture" in r for r in violations), refused
        assert any("$js.api.consumer." in r for r in violations), refused
        assert any("$js.ack." in r for r in violations), refused
        # And it cannot listen to another server's commands.
        await nc.subscribe("valt.media.ms2.cmd")
        await nc.flush()
        for _ in range(20):
            if any("valt.media.ms2.cmd" in r for r in refused):
                break
            await asyncio.sleep(0.05)
        assert any("valt.media.ms2.cmd" in r for r in refused), refused
    finally:
        await nc.close()
        await app.close()
