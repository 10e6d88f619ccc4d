"""One timer per event loop for the media engine's periodic checks.

Every camera pipeline looks for a camera that stopped sending, and every recording for a
track whose camera went quiet, a few times a second. With one task each, a media server of a
hundred cameras wakes its event loop hundreds of times a second for checks that almost always
find nothing. A :class:`Ticker` runs all the checks of one period from one timer instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

log = logging.getLogger(__name__)

#: A check: called with ``time.monotonic()`` of the tick; it must not block.
Check = Callable[[float], None]


class Ticker:
    """Calls every registered check each ``period_s`` seconds, from one timer on its loop.

    The timer runs only while a check is registered. A check that raises is logged and stays
    registered: one camera's trouble must not stop the others' checks.
    """

    _by_key: "dict[tuple[asyncio.AbstractEventLoop, float], Ticker]" = {}

    def __init__(self, loop: asyncio.AbstractEventLoop, period_s: float) -> None:
        self.loop = loop
        self.period_s = period_s
        self.checks: dict[int, Check] = {}
        self._next_id = 0
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def for_loop(cls, period_s: float, loop: asyncio.AbstractEventLoop | None = None) -> "Ticker":
        """The ticker of ``period_s`` on ``loop`` (the running loop by default)."""
        loop = loop or asyncio.get_running_loop()
        key = (loop, period_s)
        ticker = cls._by_key.get(key)
        if ticker is None:
            for old in [k for k in cls._by_key if k[0].is_closed()]:
                del cls._by_key[old]
            ticker = cls._by_key[key] = cls(loop, period_s)
        return ticker

    def add(self, check: Check) -> int:
        """Register ``check``; returns the handle for :meth:`remove`. The first check arrives
        one period after it is added."""
        self._next_id += 1
        self.checks[self._next_id] = check
        if self._timer is None:
            self._timer = self.loop.call_later(self.period_s, self._tick)
        return self._next_id

    def remove(self, handle: int | None) -> None:
        """Unregister a check (a handle already removed, or ``None``, is fine)."""
        if handle is not None:
            self.checks.pop(handle, None)
        if not self.checks and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        now = time.monotonic()
        for check in list(self.checks.values()):
            try:
                check(now)
            except Exception:  # noqa: BLE001 - see the class docstring
                log.exception("periodic media check %r failed", check)
        self._timer = self.loop.call_later(self.period_s, self._tick) if self.checks else None
