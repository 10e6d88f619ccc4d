"""The plugin host: entry points through stevedore, hooks through pluggy, loud failures."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
import types

import pytest

from valt_core import hookimpl
from valt_core.cameras import CameraDriver, DeviceInfo
from valt_core.errors import ConfigError, PluginError, ValidationFailed
from valt_core.events import EVENTS, ClipReady, RecordingStarted
from valt_core.plugins import PluginHost


def test_bundled_plugins_load_with_distribution_and_version():
    host = PluginHost.load()
    found = {(p.group, p.name): p for p in host.plugins}
    assert ("valt.auth", "local") in found
    assert ("valt.storage", "local") in found
    assert ("valt.cameras", "sim") in found
    sim = found[("valt.cameras", "sim")]
    assert sim.distribution == "valt-camera-sim"
    assert sim.version == importlib.metadata.version("valt-camera-sim")
    assert "sim" in host.camera_drivers and "local" in host.storage_backends and "local" in host.auth_backends


def test_disabled_plugin_is_not_loaded():
    host = PluginHost.load(disable=["cameras:sim"])
    assert "sim" not in host.camera_drivers
    assert ("valt.cameras", "sim") not in {(p.group, p.name) for p in host.plugins}


class _FakeEntryPoint:
    """An entry point whose target raises on import, as a broken plugin does."""

    def __init__(self, name, group, value, dist):
        self.name, self.group, self.value, self.dist = name, group, value, dist

    def load(self):
        return importlib.import_module(self.value)

    @property
    def module(self):
        return self.value

    @property
    def attr(self):
        return None

    extras: list = []


def _with_extra_entry_points(monkeypatch, extra):
    real = importlib.metadata.entry_points

    def fake(**kw):
        eps = list(real(**kw))
        return eps + [e for e in extra if e.group == kw.get("group")]

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    # stevedore reads entry points through its own cache; point it at the same view.
    import stevedore.extension as ext

    monkeypatch.setattr(ext.ExtensionManager, "list_entry_points",
                        lambda self: fake(group=self.namespace))


def test_plugin_that_fails_to_import_is_an_error_naming_it(monkeypatch, tmp_path):
    (tmp_path / "valt_broken_plugin.py").write_text("import valt_dependency_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    dist = types.SimpleNamespace(name="valt-camera-broken", version="1.0")
    _with_extra_entry_points(monkeypatch, [_FakeEntryPoint("broken", "valt.cameras", "valt_broken_plugin", dist)])
    with pytest.raises(PluginError) as info:
        PluginHost.load()
    msg = info.value.message
    assert "'broken'" in msg and "valt.cameras" in msg and "valt-camera-broken" in msg
    assert "No module named 'valt_dependency_that_is_not_installed'" in msg
    assert 'disable = ["cameras:broken"]' in msg
    # Disabled, it is not imported at all, and the rest load.
    host = PluginHost.load(disable=["cameras:broken"])
    assert "sim" in host.camera_drivers


def test_two_plugins_with_one_name_is_an_error(monkeypatch):
    dist = importlib.metadata.distribution("valt-storage-local")
    _with_extra_entry_points(monkeypatch, [_FakeEntryPoint("sim", "valt.cameras", "valt_storage_local.plugin", dist)])
    with pytest.raises(PluginError, match="two plugins are named 'sim' in group valt.cameras"):
        PluginHost.load()


def test_misspelled_hook_fails_loudly():
    class Typo:
        @hookimpl
        def valt_register_camera_driver(self):  # missing the final "s"
            return []

    with pytest.raises(PluginError, match="unknown hook"):
        PluginHost.load(extra_plugins=[Typo()])


class _Cam(CameraDriver):
    name = "sim"
    Config = CameraDriver  # never built

    async def identify(self):
        return DeviceInfo("x", "y")

    async def streams(self):
        return []


def test_two_drivers_with_one_name_is_an_error():
    class Dup:
        @hookimpl
        def valt_register_camera_drivers(self):
            return [_Cam]

    with pytest.raises(PluginError, match="two camera drivers are named 'sim'"):
        PluginHost.load(extra_plugins=[Dup()])


def test_unknown_drivers_and_bad_driver_config():
    host = PluginHost.load()
    with pytest.raises(ConfigError, match="unknown storage driver 'nfs'"):
        host.build_storage_backend("nfs", {})
    with pytest.raises(ValidationFailed, match="unknown camera driver 'acme'.*known: .*sim"):
        host.build_camera_driver("acme", {})
    with pytest.raises(ValidationFailed, match="width: must be even"):
        host.build_camera_driver("sim", {"width": 641})
    with pytest.raises(ValidationFailed, match="colour: unknown setting"):
        host.build_camera_driver("sim", {"colour": "red"})


async def test_event_hooks_reach_sync_and_async_plugins_and_failures_are_contained(caplog):
    calls = []

    class SyncObserver:
        @hookimpl
        def valt_recording_started(self, recording_id, room_id):
            calls.append(("sync", recording_id, room_id))

    class AsyncObserver:
        @hookimpl
        async def valt_recording_started(self, recording_id):
            calls.append(("async", recording_id))

    class Broken:
        @hookimpl
        def valt_recording_started(self):
            raise RuntimeError("observer bug")

    class BrokenAsync:
        @hookimpl
        async def valt_recording_started(self):
            raise RuntimeError("async observer bug")

    # Broken ones registered on both sides of the good ones: pluggy calls the last first.
    host = PluginHost.load(extra_plugins=[Broken(), SyncObserver(), BrokenAsync(), AsyncObserver(), Broken()])
    await host.notify(RecordingStarted(recording_id=7, room_id=3))
    assert ("sync", 7, 3) in calls and ("async", 7) in calls
    assert "observer bug" in caplog.text and "async observer bug" in caplog.text
    # A plugin registered after loading is contained too.
    host.pm.register(Broken(), name="late")
    calls.clear()
    await host.notify(RecordingStarted(recording_id=8, room_id=3))
    assert ("sync", 8, 3) in calls and ("async", 8) in calls


async def test_event_hooks_go_through_pluggy_so_wrappers_and_monitoring_see_them():
    seen = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def valt_clip_ready(self, clip_id):
            seen.append(("before", clip_id))
            result = yield
            seen.append(("after", clip_id))
            return result

    class Observer:
        @hookimpl
        async def valt_clip_ready(self, clip_id):
            seen.append(("observer", clip_id))

    host = PluginHost.load(extra_plugins=[Observer(), Wrapper()])
    monitored = []
    undo = host.pm.add_hookcall_monitoring(lambda name, impls, kwargs: monitored.append((name, kwargs)),
                                           lambda outcome, name, impls, kwargs: None)
    try:
        await host.notify(ClipReady(clip_id=5))
    finally:
        undo()
    assert seen == [("before", 5), ("after", 5), ("observer", 5)]  # async ones run when awaited
    assert monitored == [("valt_clip_ready", {"clip_id": 5})]


def test_every_event_hook_has_a_typed_event():
    from valt_core import hookspecs

    event_hooks = {name for name in dir(hookspecs) if name.startswith("valt_")
                   and not name.startswith(("valt_register_", "valt_discover_"))}
    assert event_hooks == set(EVENTS)
    for hook, event in EVENTS.items():
        spec_args = list(inspect.signature(getattr(hookspecs, hook)).parameters)
        assert spec_args == [f.name for f in dataclasses.fields(event)], hook


async def test_discovery_merges_sync_and_async_answers():
    from valt_core.cameras import DiscoveredCamera

    class A:
        @hookimpl
        def valt_discover_cameras(self, timeout_s):
            return [DiscoveredCamera("onvif", "127.0.0.1:8000")]

    class B:
        @hookimpl
        async def valt_discover_cameras(self, timeout_s):
            return [DiscoveredCamera("axis", "127.0.0.1:8001")]

    host = PluginHost.load(extra_plugins=[A(), B()])
    found = await host.discover_cameras(0.1)
    assert sorted(c.driver for c in found) == ["axis", "onvif"]
