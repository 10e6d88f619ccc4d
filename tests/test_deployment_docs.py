"""docs/deployment.md stays true: its commands parse, its settings exist, its routes are served.

A site integrator copies these lines as they are, so each is checked against the real thing:
every ``valt ...`` command in a shell, console or systemd block against the CLI's argparse tree,
every TOML example against the settings models (unknown keys are refused there), every
``[section] key`` named in the text against those models, and every API route against the
app's route map.
"""

from __future__ import annotations

import re
import shlex
import tomllib

import pytest

from valt_core.cli import _parser
from valt_core.settings import Settings

from .conftest import REPO, make_settings

GUIDE = REPO / "docs" / "deployment.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(language: str) -> list[str]:
    """The guide's fenced code blocks in ``language``."""
    return [body for lang, body in BLOCK.findall(GUIDE.read_text()) if lang == language]


def valt_commands() -> list[str]:
    """Every ``valt`` command line of the guide's shell, console and systemd blocks."""
    lines = []
    for language in ("sh", "console", "ini"):
        for body in blocks(language):
            for line in body.splitlines():
                line = line.removeprefix("$ ").split("#", 1)[0].strip()
                line = re.sub(r"^ExecStart=\S*/", "", line)
                if line.startswith("valt "):
                    lines.append(line)
    return lines


def test_the_guide_has_commands_settings_and_routes_to_check():
    assert len(valt_commands()) >= 8
    assert len(blocks("toml")) >= 2


@pytest.mark.parametrize("line", valt_commands())
def test_every_valt_command_in_the_guide_parses(line):
    # Redirections are the shell's, not the command's.
    words = shlex.split(re.split(r"\s[<>]\s?", line)[0])[1:]
    try:
        _parser().parse_args(words)
    except SystemExit as exit:
        pytest.fail(f"`{line}` is not a valt command line (argparse exit {exit.code})")


@pytest.mark.parametrize("example", range(len(blocks("toml"))))
def test_every_settings_example_in_the_guide_is_valid(example):
    data = tomllib.loads(blocks("toml")[example])
    Settings.model_validate(data)  # refuses an unknown key or a bad value, naming it


def test_every_setting_named_in_the_guide_exists():
    named = set(re.findall(r"`\[(\w+)\] (\w+)", GUIDE.read_text()))
    assert len(named) >= 10
    for section, key in sorted(named):
        model = Settings.model_fields[section].annotation
        assert key in model.model_fields, f"[{section}] {key} is named in docs/deployment.md but is no setting"


def test_every_api_route_in_the_guide_is_served(tmp_path):
    from valt_core.app import create_app

    app = create_app(make_settings(tmp_path))
    served = {(method, re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule))
              for rule in app.url_map.iter_rules() for method in rule.methods}
    named = re.findall(r"`(GET|POST|PATCH|PUT|DELETE) (/api/v1/[^`\s]+)`", GUIDE.read_text())
    assert len(named) >= 4
    for method, path in named:
        assert (method, path) in served, f"{method} {path} is named in docs/deployment.md but not served"
