"""The bus contract, run against both buses: the in-process one and NATS (a private nats-server).

Each contract test runs twice (``bus`` is parametrized), so code written against one bus behaves
the same on the other. The NATS-only tests at the end stop the server mid-stream, refuse a user
another site's subjects, speak TLS, and check that no secret reaches a log or an error.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Callable

import nkeys
import pytest

from valt_core.bus import BusUnavailable, InProcessBus, KeyExists, Message, WrongRevision
from valt_core.bus.base import Bus, BusPermissionDenied
from valt_core.bus.nats import NatsBus

from .peers.nats import NatsUser, PrivateNats, TlsFiles, delete_streams, free_port

#: Redelivery after a failed handler, short so the tests are quick.
REDELIVER_S = 0.3


async def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait until ``condition()`` holds; fail the test if it does not within ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"not true within {timeout_s:g} s")
        await asyncio.sleep(0.02)


def nats_bus(url: str, **options) -> NatsBus:
    """A NatsBus with the tests' short timeouts."""
    options = {"name": "valt-test", "op_timeout_s": 1.0, "redeliver_s": REDELIVER_S, "connect_timeout_s": 3.0,
               "reconnect_max_wait_s": 0.5, **options}
    return NatsBus([url], **options)


@pytest.fixture(params=["inprocess", "nats"])
async def buses(request: pytest.FixtureRequest):
    """A factory of buses on one network: over NATS each is its own connection (another process)."""
    made: list[Bus] = []
    shared = InProcessBus(redeliver_s=REDELIVER_S)
    server = request.getfixturevalue("nats_server") if request.param == "nats" else None

    async def make() -> Bus:
        if server is None:
            return shared
        bus = nats_bus(server.url)
        await bus.start()
        made.append(bus)
        return bus

    try:
        yield make
    finally:
        for bus in made:
            await bus.close()
        await shared.close()
        if server is not None:
            await delete_streams(server.url)


@pytest.fixture
async def bus(buses) -> Bus:
    """One bus (see ``buses``)."""
    return await buses()


# --- request/reply ------------------------------------------------------------------------------

async def test_request_gets_the_responders_answer(buses) -> None:
    server, client = await buses(), await buses()

    async def upper(msg: Message) -> Message:
        return Message(msg.subject, msg.data.upper(), {"seen": msg.headers.get("ask", "")})

    await server.serve("valt.media.a.cmd", upper, queue="media-a")
    answer = await client.request("valt.media.a.cmd", b"start", timeout_s=2, headers={"ask": "1"})
    assert (answer.data, answer.headers) == (b"START", {"seen": "1"})


async def test_request_nobody_serves_is_unavailable(bus) -> None:
    with pytest.raises(BusUnavailable, match="nobody answers valt.media.none.cmd"):
        await bus.request("valt.media.none.cmd", b"", timeout_s=2)


async def test_request_not_answered_in_time_is_unavailable(bus) -> None:
    async def slow(msg: Message) -> Message:
        await asyncio.sleep(3)
        return Message(msg.subject, b"late")

    await bus.serve("valt.media.slow.cmd", slow)
    with pytest.raises(BusUnavailable, match="within 0.3 s"):
        await bus.request("valt.media.slow.cmd", b"", timeout_s=0.3)


async def test_a_failing_responder_is_reported_not_waited_for(bus) -> None:
    async def broken(msg: Message) -> Message:
        raise RuntimeError("camera exploded")

    await bus.serve("valt.media.broken.cmd", broken)
    # The timeout is long: the answer must be the failure, not the timeout.
    with pytest.raises(BusUnavailable, match="responder on valt.media.broken.cmd failed"):
        await asyncio.wait_for(bus.request("valt.media.broken.cmd", b"", timeout_s=30), 10)


# --- publish/subscribe --------------------------------------------------------------------------

async def test_subscribers_get_what_their_wildcards_match(buses) -> None:
    sender, receiver = await buses(), await buses()
    one_token: list[str] = []
    rest: list[str] = []

    async def to(into: list[str]):
        async def handler(msg: Message) -> None:
            into.append(msg.subject)
        return handler

    await receiver.subscribe("valt.live.*.frag", await to(one_token))
    await receiver.subscribe("valt.live.>", await to(rest))
    for subject in ("valt.live.cam1.frag", "valt.live.cam1.init", "valt.live.cam2.frag", "valt.other.cam1.frag",
                    "valt.live.a.b.frag", "valt.live.end.frag"):
        await sender.publish(subject, b"x")
    # Messages from one sender arrive in order: once the last one is here, so is everything.
    await eventually(lambda: "valt.live.end.frag" in one_token and "valt.live.end.frag" in rest)
    assert one_token == ["valt.live.cam1.frag", "valt.live.cam2.frag", "valt.live.end.frag"]
    assert rest == ["valt.live.cam1.frag", "valt.live.cam1.init", "valt.live.cam2.frag", "valt.live.a.b.frag",
                    "valt.live.end.frag"]


async def test_one_member_of_a_queue_group_gets_each_message(buses) -> None:
    sender = await buses()
    members: list[list[bytes]] = [[], [], []]
    everyone: list[bytes] = []

    def keep(into: list[bytes]):
        async def handler(msg: Message) -> None:
            into.append(msg.data)
        return handler

    for got in members:
        await (await buses()).subscribe("valt.events.x", keep(got), queue="relays")
    await (await buses()).subscribe("valt.events.x", keep(everyone))
    sent = [str(i).encode() for i in range(30)]
    for data in sent:
        await sender.publish("valt.events.x", data)
    await eventually(lambda: len(everyone) == 30 and sum(map(len, members)) >= 30)
    await asyncio.sleep(0.2)  # room for a copy that should not come
    assert sorted(sum(members, []), key=int) == sent
    assert everyone == sent


async def test_a_subscriber_gets_its_messages_in_order_even_when_it_awaits(bus) -> None:
    got: list[int] = []

    async def handler(msg: Message) -> None:
        n = int(msg.data)
        await asyncio.sleep(0.03 if n % 2 else 0)  # an odd message takes longer to handle
        got.append(n)

    await bus.subscribe("valt.live.cam.frag", handler)
    for i in range(10):
        await bus.publish("valt.live.cam.frag", str(i).encode())
    await eventually(lambda: len(got) == 10)
    assert got == list(range(10))


async def test_a_closed_subscription_gets_nothing_more(bus) -> None:
    closed: list[bytes] = []
    still: list[bytes] = []

    async def into_closed(msg: Message) -> None:
        closed.append(msg.data)

    async def into_still(msg: Message) -> None:
        still.append(msg.data)

    sub = await bus.subscribe("valt.live.c", into_closed)
    await bus.subscribe("valt.live.c", into_still)
    await bus.publish("valt.live.c", b"1")
    await eventually(lambda: closed == [b"1"] and still == [b"1"])
    await sub.close()
    await bus.publish("valt.live.c", b"2")
    await eventually(lambda: still == [b"1", b"2"])
    assert closed == [b"1"]


# --- the durable stream -------------------------------------------------------------------------

def recorder(into: list[bytes]):
    """A durable handler that keeps each message's data."""
    async def handler(msg: Message) -> None:
        into.append(msg.data)
    return handler


async def test_durable_messages_come_in_order_with_their_headers(buses) -> None:
    media, app = await buses(), await buses()
    for i in range(10):
        await media.publish_durable("valt.index.siteA", str(i).encode(), msg_id=f"e{i}",
                                    headers={"valt-seq": str(i)})
    seen: list[Message] = []

    async def handler(msg: Message) -> None:
        seen.append(msg)

    await app.consume_durable("valt.index.>", "app", handler)
    await eventually(lambda: len(seen) == 10)
    assert [m.data for m in seen] == [str(i).encode() for i in range(10)]
    assert [m.headers for m in seen] == [{"valt-seq": str(i)} for i in range(10)]
    assert {m.subject for m in seen} == {"valt.index.siteA"}


async def test_a_handler_that_raises_gets_the_message_again_before_the_next(bus) -> None:
    attempts: list[bytes] = []

    async def handler(msg: Message) -> None:
        attempts.append(msg.data)
        if msg.data == b"2" and attempts.count(b"2") == 1:
            raise RuntimeError("database is down")

    for i in range(1, 5):
        await bus.publish_durable("valt.index.a", str(i).encode(), msg_id=f"m{i}")
    await bus.consume_durable("valt.index.>", "app", handler)
    await eventually(lambda: b"4" in attempts)
    assert attempts == [b"1", b"2", b"2", b"3", b"4"]


async def test_a_message_published_twice_with_one_id_is_delivered_once(bus) -> None:
    await bus.publish_durable("valt.index.a", b"first", msg_id="seg-7-closed")
    await bus.publish_durable("valt.index.a", b"retry", msg_id="seg-7-closed")
    await bus.publish_durable("valt.index.a", b"next", msg_id="seg-8-closed")
    got: list[bytes] = []
    await bus.consume_durable("valt.index.>", "app", recorder(got))
    await eventually(lambda: b"next" in got)
    assert got == [b"first", b"next"]


async def test_a_reopened_durable_consumer_carries_on_where_it_stopped(buses) -> None:
    media = await buses()
    for i in (1, 2, 3):
        await media.publish_durable("valt.index.a", str(i).encode(), msg_id=f"m{i}")
    first: list[bytes] = []
    consumer = await (await buses()).consume_durable("valt.index.>", "app", recorder(first))
    await eventually(lambda: first == [b"1", b"2", b"3"])
    await consumer.close()
    for i in (4, 5):
        await media.publish_durable("valt.index.a", str(i).encode(), msg_id=f"m{i}")
    again: list[bytes] = []
    # Another connection, as after the app server restarted.
    await (await buses()).consume_durable("valt.index.>", "app", recorder(again))
    await eventually(lambda: b"5" in again)
    assert again == [b"4", b"5"]


async def test_a_message_whose_consumer_closed_mid_handler_goes_to_the_next_one_at_once(buses) -> None:
    media = await buses()
    for i in (1, 2, 3):
        await media.publish_durable("valt.index.a", str(i).encode(), msg_id=f"m{i}")
    seen: list[bytes] = []

    async def stuck_on_two(msg: Message) -> None:
        seen.append(msg.data)
        if msg.data == b"2":
            await asyncio.Event().wait()

    consumer = await (await buses()).consume_durable("valt.index.>", "app", stuck_on_two)
    await eventually(lambda: seen == [b"1", b"2"])
    await consumer.close()
    again: list[bytes] = []
    await (await buses()).consume_durable("valt.index.>", "app", recorder(again))
    # Well before NATS's ack wait (30 s) would have given "2" back.
    await eventually(lambda: again == [b"2", b"3"], timeout_s=5)


async def test_each_durable_name_gets_every_message_of_its_subjects(bus) -> None:
    await bus.publish_durable("valt.index.siteA", b"a1", msg_id="a1")
    await bus.publish_durable("valt.index.siteB", b"b1", msg_id="b1")
    await bus.publish_durable("valt.index.siteA", b"a2", msg_id="a2")
    everything: list[bytes] = []
    site_a: list[bytes] = []
    await bus.consume_durable("valt.index.>", "app", recorder(everything))
    await bus.consume_durable("valt.index.siteA", "audit-a", recorder(site_a))
    await eventually(lambda: len(everything) == 3 and len(site_a) == 2)
    assert everything == [b"a1", b"b1", b"a2"]
    assert site_a == [b"a1", b"a2"]


async def test_durable_publish_outside_the_index_subjects_is_refused(bus) -> None:
    with pytest.raises(ValueError, match="valt.index"):
        await bus.publish_durable("valt.live.cam1", b"x", msg_id="x")


# --- key-value ----------------------------------------------------------------------------------

async def test_key_value_create_update_delete_with_revisions(buses) -> None:
    server_a, server_b = await buses(), await buses()
    leases_a, leases_b = await server_a.key_value("leases"), await server_b.key_value("leases")
    rev = await leases_a.create("camera-7", b"media-a")
    with pytest.raises(KeyExists):
        await leases_b.create("camera-7", b"media-b")
    entry = await leases_b.get("camera-7")
    assert entry is not None and (entry.value, entry.revision) == (b"media-a", rev)
    renewed = await leases_a.update("camera-7", b"media-a", rev)
    assert renewed > rev
    # media-b saw the old revision: its compare-and-swap must fail.
    with pytest.raises(WrongRevision):
        await leases_b.update("camera-7", b"media-b", rev)
    with pytest.raises(WrongRevision):
        await leases_b.delete("camera-7", revision=rev)
    assert (await leases_a.get("camera-7")).value == b"media-a"
    put_rev = await leases_b.put("camera-8", b"media-b")
    assert sorted(await leases_a.keys()) == ["camera-7", "camera-8"]
    await leases_a.delete("camera-7", revision=renewed)
    await leases_b.delete("camera-8")
    assert await leases_a.get("camera-7") is None and await leases_a.get("camera-8") is None
    assert await leases_a.keys() == []
    # A deleted key can be created again (a lease given up is free).
    assert await leases_b.create("camera-7", b"media-b") > put_rev


async def test_key_value_entries_expire_after_the_buckets_ttl(bus) -> None:
    presence = await bus.key_value("presence", ttl_s=1.0)
    await presence.create("media-a", b"alive")
    assert (await presence.get("media-a")).value == b"alive"
    await asyncio.sleep(1.0)
    gone: list[bool] = []

    async def check() -> None:
        while await presence.get("media-a") is not None:
            await asyncio.sleep(0.1)
        gone.append(True)

    await asyncio.wait_for(check(), 5)
    assert gone and await presence.keys() == []
    # An expired lease is free for another server to take.
    await presence.create("media-a", b"media-b took it")


# --- NATS only ----------------------------------------------------------------------------------

async def test_nats_durable_publish_fails_fast_while_nats_is_down_and_everything_arrives_after(tmp_path) -> None:
    server = PrivateNats(tmp_path / "nats")
    media, app = nats_bus(server.url), nats_bus(server.url)
    await media.start()
    await app.start()
    try:
        got: list[bytes] = []
        live: list[bytes] = []
        await app.consume_durable("valt.index.>", "app", recorder(got))
        await app.subscribe("valt.live.cam1", recorder(live))
        leases = await media.key_value("leases")
        rev = await leases.create("camera-1", b"media")
        await media.publish_durable("valt.index.m", b"1", msg_id="m1")
        await eventually(lambda: got == [b"1"])

        server.stop()
        # Bounded: a publish that hung instead of failing fails this test as a timeout.
        with pytest.raises(BusUnavailable):
            await asyncio.wait_for(media.publish_durable("valt.index.m", b"2", msg_id="m2"), 3)
        await eventually(lambda: not media.connected)
        with pytest.raises(BusUnavailable, match="reconnecting"):
            await asyncio.wait_for(media.publish_durable("valt.index.m", b"2", msg_id="m2"), 3)
        with pytest.raises(BusUnavailable):
            await asyncio.wait_for(leases.update("camera-1", b"media", rev), 3)

        server.start()
        await eventually(lambda: media.connected and app.connected, timeout_s=10)
        # The caller kept what failed and sends it again, with the same ids.
        await media.publish_durable("valt.index.m", b"2", msg_id="m2")
        await media.publish_durable("valt.index.m", b"3", msg_id="m3")
        await eventually(lambda: b"3" in got)
        assert got == [b"1", b"2", b"3"]
        # Subscriptions and the bucket carried over the restart too.
        await media.publish("valt.live.cam1", b"frag")
        await eventually(lambda: live == [b"frag"])
        assert await leases.update("camera-1", b"media", rev) > rev
    finally:
        await asyncio.wait_for(media.close(), 5)
        await asyncio.wait_for(app.close(), 5)
        server.stop()


async def test_nats_close_while_nats_is_down_is_quick(tmp_path) -> None:
    server = PrivateNats(tmp_path / "nats")
    bus = nats_bus(server.url)
    await bus.start()
    await bus.consume_durable("valt.index.>", "app", recorder([]))
    await bus.subscribe("valt.live.x", recorder([]))
    server.stop()
    await eventually(lambda: not bus.connected)
    await asyncio.wait_for(bus.close(), 3)


async def test_nats_start_with_no_server_is_unavailable(tmp_path) -> None:
    bus = nats_bus(f"nats://127.0.0.1:{free_port()}", connect_timeout_s=1.0)
    with pytest.raises(BusUnavailable, match="cannot connect to NATS"):
        await asyncio.wait_for(bus.start(), 5)


SITE_A_PASSWORD = "siteA-S3cret-pw"


@pytest.fixture
def sites(tmp_path):
    """A server whose ``siteA`` user may publish only its own site's subjects, and an unrestricted admin."""
    site_a = NatsUser("siteA", SITE_A_PASSWORD,
                      publish=["valt.index.siteA.>", "valt.media.siteA.>", "$JS.API.>", "$JS.ACK.>", "_INBOX.>"],
                      subscribe=["_INBOX.>", "valt.media.siteA.>"])
    server = PrivateNats(tmp_path / "nats", users=[site_a, NatsUser("admin", "admin-pw")])
    yield server
    server.stop()


async def test_nats_a_site_may_not_publish_into_another_sites_subjects(sites, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    site_a = nats_bus(sites.url, user="siteA", password=SITE_A_PASSWORD, op_timeout_s=3.0)
    admin = nats_bus(sites.url, user="admin", password="admin-pw")
    await site_a.start()
    await admin.start()
    try:
        got: list[bytes] = []
        await admin.consume_durable("valt.index.>", "app", recorder(got))
        with pytest.raises(BusPermissionDenied, match="valt.index.siteb.seg"):
            await site_a.publish_durable("valt.index.siteB.seg", b"forged", msg_id="f1")
        await site_a.publish_durable("valt.index.siteA.seg", b"own", msg_id="o1")
        await eventually(lambda: got == [b"own"])
        with pytest.raises(BusPermissionDenied):
            await site_a.request("valt.media.siteB.cmd", b"stop", timeout_s=3)
        with pytest.raises(BusPermissionDenied):
            await site_a.subscribe("valt.media.siteB.>", recorder([]))
        # Its own command subject works both ways.
        async def ok(msg: Message) -> Message:
            return Message(msg.subject, b"ok")
        await site_a.serve("valt.media.siteA.cmd", ok)
        assert (await site_a.request("valt.media.siteA.cmd", b"", timeout_s=2)).data == b"ok"
        assert got == [b"own"]
    finally:
        await site_a.close()
        await admin.close()
    assert "permissions violation" in caplog.text
    assert SITE_A_PASSWORD not in caplog.text


async def test_nats_a_wrong_password_is_refused_without_quoting_it(sites, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-Pa55word"
    bus = nats_bus(sites.url, user="siteA", password=wrong, connect_timeout_s=1.5)
    with pytest.raises(BusUnavailable, match="(?i)authorization violation") as refused:
        await bus.start()
    assert wrong not in str(refused.value) and wrong not in caplog.text
    # Credentials in the URL are masked in logs and errors too.
    in_url = sites.url.replace("nats://", f"nats://siteA:{wrong}@")
    with pytest.raises(BusUnavailable) as refused:
        await NatsBus([in_url], name="t", connect_timeout_s=1.5).start()
    assert wrong not in str(refused.value) and wrong not in caplog.text
    good = NatsBus([sites.url.replace("nats://", f"nats://siteA:{SITE_A_PASSWORD}@")], name="t")
    await good.start()
    await good.close()
    assert SITE_A_PASSWORD not in caplog.text and "bus: connected to NATS" in caplog.text


async def test_nats_token_and_nkey_authentication(tmp_path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    token = "tok-S3cret-0123456789"
    server = PrivateNats(tmp_path / "token", token=token)
    try:
        bus = nats_bus(server.url, token=token)
        await bus.start()
        kv = await bus.key_value("presence")
        assert await kv.create("m", b"1") >= 1
        await bus.close()
        with pytest.raises(BusUnavailable) as refused:
            await nats_bus(server.url, token=token[::-1], connect_timeout_s=1.5).start()
        assert token[::-1] not in str(refused.value) and token not in caplog.text
    finally:
        server.stop()

    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    seed_file = tmp_path / "media-a.nk"
    seed_file.write_bytes(seed)
    server = PrivateNats(tmp_path / "nkey", users=[NatsUser("media-a", nkey=nkeys.from_seed(seed).public_key.decode())])
    try:
        bus = nats_bus(server.url, nkey_seed_file=seed_file)
        await bus.start()
        await bus.publish_durable("valt.index.a", b"1", msg_id="1")
        await bus.close()
        with pytest.raises(BusUnavailable, match="(?i)authorization violation"):
            await nats_bus(server.url, connect_timeout_s=1.5).start()
    finally:
        server.stop()


async def test_nats_over_tls_with_the_servers_ca(tmp_path: Path) -> None:
    tls = TlsFiles.make(tmp_path / "tls")
    server = PrivateNats(tmp_path / "nats", tls=tls)
    try:
        assert server.url.startswith("tls://")
        bus = nats_bus(server.url, tls_ca_file=tls.ca_cert)
        await bus.start()

        async def echo(msg: Message) -> Message:
            return Message(msg.subject, msg.data)

        await bus.serve("valt.media.a.cmd", echo)
        assert (await bus.request("valt.media.a.cmd", b"over tls", timeout_s=2)).data == b"over tls"
        await bus.close()
        # Without the CA the server's certificate is not trusted.
        with pytest.raises(BusUnavailable, match="certificate"):
            await nats_bus(server.url, connect_timeout_s=1.5).start()
    finally:
        server.stop()


async def test_durable_pending_counts_what_the_consumer_has_not_acknowledged(bus) -> None:
    release = asyncio.Event()
    seen: list[bytes] = []

    async def slow(msg: Message) -> None:
        await release.wait()
        seen.append(msg.data)

    for i in range(3):
        await bus.publish_durable("valt.index.pending", b"%d" % i, f"pending-{i}")
    consumer = await bus.consume_durable("valt.index.pending", "pending-test", slow)
    try:
        await asyncio.sleep(0.3)
        assert await bus.durable_pending("pending-test") == 3
        release.set()
        for _ in range(100):
            if len(seen) == 3:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        assert seen == [b"0", b"1", b"2"]
        assert await bus.durable_pending("pending-test") == 0
    finally:
        await consumer.close()
