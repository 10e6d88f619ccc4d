"""The media engine's shared ticker: one timer runs every registered check each period."""

from __future__ import annotations

import asyncio
import logging

from valt_core.media.ticker import Ticker


async def test_one_timer_runs_every_check_each_period_and_stops_when_none_is_left():
    ticker = Ticker.for_loop(0.02)
    assert Ticker.for_loop(0.02) is ticker and Ticker.for_loop(0.05) is not ticker
    seen: dict[str, list[float]] = {"a": [], "b": []}
    a = ticker.add(seen["a"].append)
    b = ticker.add(seen["b"].append)
    await asyncio.sleep(0.11)
    assert 3 <= len(seen["a"]) <= 6 and len(seen["b"]) == len(seen["a"]), seen
    assert seen["a"] == seen["b"]  # the same tick, the same time
    ticker.remove(a)
    before = len(seen["a"])
    await asyncio.sleep(0.05)
    assert len(seen["a"]) == before and len(seen["b"]) > before
    ticker.remove(b)
    ticker.remove(b)  # twice is fine
    assert ticker._timer is None  # nothing left: no timer wakes the loop
    again = ticker.add(seen["a"].append)
    await asyncio.sleep(0.05)
    assert len(seen["a"]) > before
    ticker.remove(again)


async def test_a_failing_check_is_logged_and_the_others_still_run(caplog):
    ticker = Ticker.for_loop(0.01)
    calls = []

    def broken(now: float) -> None:
        calls.append("broken")
        raise RuntimeError("camera 7 is odd")

    handles = [ticker.add(broken), ticker.add(lambda now: calls.append("fine"))]
    with caplog.at_level(logging.ERROR, logger="valt_core.media.ticker"):
        await asyncio.sleep(0.045)
    for handle in handles:
        ticker.remove(handle)
    assert calls.count("broken") >= 2 and calls.count("fine") == calls.count("broken"), calls
    assert "camera 7 is odd" in caplog.text
