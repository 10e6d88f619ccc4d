"""Stopping a peer's process the same way everywhere."""

from __future__ import annotations

import subprocess


def stop_process(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """SIGTERM ``proc`` and wait; SIGKILL it if it has not gone within ``grace_s``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
