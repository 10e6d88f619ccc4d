"""A simulated pan-tilt-zoom head: what the sim camera's picture is turned by.

Moves follow simple physics: a continuous move changes the position at its speed (full speed
crosses half the range in a second) until stopped or at a limit; absolute, relative and preset
moves land at once. Thread-safe: the driver moves it from the event loop while the encoder
thread reads it for every frame.
"""

from __future__ import annotations

import threading
import time

from valt_core.cameras import Preset, PtzPosition
from valt_core.errors import NotFound

#: Range units per second at speed 1.0.
FULL_SPEED = 1.0
LIMITS = {"pan": (-1.0, 1.0), "tilt": (-1.0, 1.0), "zoom": (0.0, 1.0)}


def _clamp(axis: str, value: float) -> float:
    low, high = LIMITS[axis]
    return min(high, max(low, value))


class SimulatedPtz:
    """Position, speed and presets of one simulated camera."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pos = {"pan": 0.0, "tilt": 0.0, "zoom": 0.0}
        self._speed = {"pan": 0.0, "tilt": 0.0, "zoom": 0.0}
        self._at = time.monotonic()
        self._presets: dict[str, tuple[str, dict[str, float]]] = {}
        self._next_token = 1

    def _advance(self) -> None:
        now = time.monotonic()
        for axis, speed in self._speed.items():
            if speed:
                self._pos[axis] = _clamp(axis, self._pos[axis] + speed * FULL_SPEED * (now - self._at))
        self._at = now

    def position(self) -> PtzPosition:
        """Where the head points now."""
        with self._lock:
            self._advance()
            moving = any(s and LIMITS[a][s > 0] != self._pos[a] for a, s in self._speed.items())
            return PtzPosition(round(self._pos["pan"], 4), round(self._pos["tilt"], 4),
                               round(self._pos["zoom"], 4), moving)

    def move(self, pan: float, tilt: float, zoom: float) -> None:
        """Start moving at these speeds (-1..1)."""
        with self._lock:
            self._advance()
            self._speed = {"pan": pan, "tilt": tilt, "zoom": zoom}

    def stop(self) -> None:
        """Stop where it is."""
        self.move(0.0, 0.0, 0.0)

    def go(self, pan: float, tilt: float, zoom: float, relative: bool = False) -> None:
        """Jump to a position, or by a step."""
        with self._lock:
            self._advance()
            self._speed = dict.fromkeys(self._speed, 0.0)
            for axis, value in (("pan", pan), ("tilt", tilt), ("zoom", zoom)):
                self._pos[axis] = _clamp(axis, self._pos[axis] + value if relative else value)

    def presets(self) -> list[Preset]:
        """Stored positions in the order they were made."""
        with self._lock:
            return [Preset(token, name) for token, (name, _) in self._presets.items()]

    def save(self, name: str) -> Preset:
        """Store the position as ``name``, replacing a preset of that name."""
        with self._lock:
            self._advance()
            token = next((t for t, (n, _) in self._presets.items() if n == name), None)
            if token is None:
                token, self._next_token = f"sim-{self._next_token}", self._next_token + 1
            self._presets[token] = (name, dict(self._pos))
            return Preset(token, name)

    def goto(self, token: str) -> None:
        """Jump to a stored position."""
        with self._lock:
            if token not in self._presets:
                raise NotFound(f"the simulated camera has no preset {token!r}")
            target = self._presets[token][1]
        self.go(target["pan"], target["tilt"], target["zoom"])

    def remove(self, token: str) -> None:
        """Forget a stored position."""
        with self._lock:
            if self._presets.pop(token, None) is None:
                raise NotFound(f"the simulated camera has no preset {token!r}")
