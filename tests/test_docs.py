"""Docs stay honest: every hook, setting, CLI command and API route is described."""

from __future__ import annotations

import inspect
import re

from pydantic import BaseModel

from valt_core import hookspecs
from valt_core.settings import Settings

from .conftest import REPO

DOCS = REPO / "docs"


def hook_names() -> list[str]:
    return [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if name.startswith("valt_") and hasattr(fn, "valt_spec")]


def test_every_hook_has_a_heading_in_the_hook_reference():
    names = hook_names()
    assert len(names) >= 12
    text = (DOCS / "hooks.md").read_text()
    headings = [line for line in text.splitlines() if line.startswith(("## ", "### "))]
    for name in names:
        assert any(f"`{name}" in h for h in headings), f"{name} is not documented in docs/hooks.md"


def test_every_hook_has_a_docstring():
    for name in hook_names():
        assert (getattr(hookspecs, name).__doc__ or "").strip(), name


def _setting_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += _setting_keys(ann, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def test_every_setting_is_in_the_settings_reference():
    text = (DOCS / "settings.md").read_text()
    for key in _setting_keys(Settings):
        leaf = key.rsplit(".", 1)[-1]
        assert f"`{leaf}`" in text or f"`{key}`" in text, f"setting {key} is not in docs/settings.md"


def test_every_cli_command_is_documented():
    text = (DOCS / "cli.md").read_text()
    for command in ["valt serve", "valt demo", "valt plugins", "valt user add", "valt db upgrade", "valt db check"]:
        assert command in text, command


def test_every_api_route_is_in_the_api_doc(tmp_path):
    from valt_core.app import create_app

    from .conftest import make_settings

    app = create_app(make_settings(tmp_path))
    text = (DOCS / "api.md").read_text()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            assert path in text, f"{path} is not in docs/api.md"


def test_every_bus_message_is_in_the_bus_reference():
    from valt_core.bus.messages import MESSAGES

    text = (DOCS / "bus.md").read_text()
    assert len(MESSAGES) >= 15
    for kind in MESSAGES:
        assert f"| `{kind}` |" in text, f"bus message {kind} is not in docs/bus.md"
