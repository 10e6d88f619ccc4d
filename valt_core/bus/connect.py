"""The bus the settings ask for: in-process when ``[bus] url`` is empty, NATS otherwise."""

from __future__ import annotations

from ..settings import Settings
from .base import Bus


def bus_from_settings(settings: Settings, name: str) -> Bus:
    """A bus (not yet started) for the process called ``name``."""
    config = settings.bus
    if not config.servers:
        from .local import InProcessBus

        return InProcessBus()
    from .nats import NatsBus

    return NatsBus(
        config.servers, name, user=config.user or None,
        password=config.password.get_secret_value() if config.password else None,
        token=config.token.get_secret_value() if config.token else None,
        creds_file=config.creds_file, nkey_seed_file=config.nkey_seed_file, tls_ca_file=config.tls_ca,
        tls_cert_file=config.tls_cert, tls_key_file=config.tls_key, prefix=config.prefix,
    )
