"""Settings: defaults, TOML, environment overrides, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from valt_core.errors import ConfigError
from valt_core.settings import load_settings


def test_embedded_defaults(tmp_path):
    s = load_settings(None, {})
    assert s.data_dir == Path("./valt-data")
    assert s.database_url.startswith("sqlite+aiosqlite:///") and s.database_url.endswith("valt-data/valt.db")
    assert s.storage.driver == "local"
    assert s.auth.backends == ["local"]
    assert (s.server.host, s.server.port) == ("127.0.0.1", 8080)


def test_toml_then_environment(tmp_path):
    cfg = tmp_path / "valt.toml"
    cfg.write_text('data_dir = "/srv/valt"\n[server]\nport = 9000\n[plugins]\ndisable = ["cameras:onvif"]\n')
    s = load_settings(cfg, {"VALT_SERVER__PORT": "9100", "VALT_DATABASE_URL": "mysql+aiomysql://v:pw@db/valt",
                            "VALT_AUTH__LOCKOUT_THRESHOLD": "7"})
    assert s.data_dir == Path("/srv/valt")
    assert s.server.port == 9100  # the environment wins over the file
    assert s.database_url == "mysql+aiomysql://v:pw@db/valt"
    assert s.auth.lockout_threshold == 7
    assert s.plugins.disable == ["cameras:onvif"]


def test_config_path_from_environment(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[server]\nhost = '0.0.0.0'\n")
    assert load_settings(None, {"VALT_CONFIG": str(cfg)}).server.host == "0.0.0.0"


def test_json_lists_in_environment():
    s = load_settings(None, {"VALT_PLUGINS__DISABLE": '["sim", "storage:local"]'})
    assert s.plugins.disable == ["sim", "storage:local"]


@pytest.mark.parametrize(
    "toml, env, expected",
    [
        ("[server]\nprot = 1\n", {}, "server.prot: unknown setting"),
        ("[server]\nport = 'eighty'\n", {}, "server.port: Input should be a valid integer"),
        ("", {"VALT_SERVER__PORT": "70000"}, "server.port: Input should be less than or equal to 65535"),
        ("colour = 'red'\n", {}, "colour: unknown setting"),
        ("[server\n", {}, "is not valid TOML"),
        ("", {"VALT_PLUGINS__DISABLE": "[oops"}, "VALT_PLUGINS__DISABLE: not valid JSON"),
    ],
)
def test_bad_settings_name_the_key(tmp_path, toml, env, expected):
    cfg = tmp_path / "valt.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, env)
    assert expected in info.value.message


def test_missing_settings_file(tmp_path):
    with pytest.raises(ConfigError, match="settings file not found"):
        load_settings(tmp_path / "absent.toml", {})


def test_secret_key_is_generated_once_and_private(tmp_path):
    s = load_settings(None, {"VALT_DATA_DIR": str(tmp_path)})
    first = s.secret_key_bytes()
    assert len(first) >= 32 and s.secret_key_bytes() == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_configured_secret_never_shows_in_repr():
    s = load_settings(None, {"VALT_SERVER__SECRET_KEY": "hunter2-very-secret"})
    assert s.secret_key_bytes() == b"hunter2-very-secret"
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())
