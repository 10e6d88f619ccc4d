"""The local auth backend: argon2id hashes, right and wrong passwords, rehash on new costs."""

from __future__ import annotations

from valt_auth_local.backend import LocalAuthBackend
from valt_auth_local.config import LocalAuthConfig

FAST = LocalAuthConfig(time_cost=1, memory_cost_kib=8192, parallelism=1)


async def test_right_password_wrong_password_unknown_user():
    backend = LocalAuthBackend(FAST)
    stored = backend.hash_password("s3cret passphrase")
    assert stored.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    ok = await backend.check_password("ann", "s3cret passphrase", stored)
    assert ok is not None and ok.username == "ann"
    assert await backend.check_password("ann", "s3cret passphrasE", stored) is None
    assert await backend.check_password("ghost", "s3cret passphrase", None) is None
    assert await backend.check_password("ann", "x", "not-a-hash") is None


def test_hashes_are_salted():
    backend = LocalAuthBackend(FAST)
    assert backend.hash_password("same") != backend.hash_password("same")


def test_needs_rehash_when_costs_change():
    old = LocalAuthBackend(FAST).hash_password("pw")
    stronger = LocalAuthBackend(LocalAuthConfig(time_cost=2, memory_cost_kib=8192, parallelism=1))
    assert stronger.needs_rehash(old)
    assert not LocalAuthBackend(FAST).needs_rehash(old)
