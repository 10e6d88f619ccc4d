"""A private network for discovery tests: a network namespace joined to the host by a veth pair.

Discovery sends multicast. A test must never probe a real LAN, so the devices run inside a
namespace the test makes, and Valt probes only out of the host end of the veth link: the
packets cannot leave the machine. Needs root (``ip netns``), which tests and CI have here.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from typing import Any

_counter = itertools.count(1)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class NetNamespace:
    """A namespace ``name`` with a veth link: ``host_address`` here, ``ns_address`` inside."""

    def __init__(self) -> None:
        n = next(_counter)
        tag = f"{os.getpid() % 100000}x{n}"
        self.name = f"valt-{tag}"
        self.host_if = f"vh{tag}"[:15]
        self.ns_if = f"vn{tag}"[:15]
        # A /24 unlikely to clash with anything real on the host, distinct per test run.
        net = f"10.{200 + (os.getpid() % 50)}.{n % 250}"
        self.host_address = f"{net}.1"
        self.ns_address = f"{net}.2"
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            _ip("link", "set", self.ns_if, "netns", self.name)
            _ip("addr", "add", f"{self.host_address}/24", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
            self.exec_ip("addr", "add", f"{self.ns_address}/24", "dev", self.ns_if)
            self.exec_ip("link", "set", self.ns_if, "up")
            self.exec_ip("link", "set", "lo", "up")
            # Multicast inside the namespace goes out of its only link, towards the host end.
            self.exec_ip("route", "add", "224.0.0.0/4", "dev", self.ns_if)
        except Exception:
            self.close()
            raise

    def exec_ip(self, *args: str) -> None:
        """Run ``ip ARGS`` inside the namespace."""
        _ip("netns", "exec", self.name, "ip", *args)

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen:
        """Start ``argv`` inside the namespace."""
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kwargs)

    def close(self) -> None:
        """Delete the namespace; its end of the veth goes with it, and so does ours."""
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)

    def __enter__(self) -> "NetNamespace":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
