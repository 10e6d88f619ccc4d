"""The plugin host: finds plugins through entry points (stevedore), calls them through pluggy.

The rest of the core talks to plugins only through :class:`PluginHost`, a small typed facade,
never through ``pm.hook`` directly.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

import pluggy
from pydantic import BaseModel, ValidationError
from stevedore import NamedExtensionManager

from . import hookspecs
from .auth.base import AuthBackend
from .cameras.base import CameraDriver, DiscoveredCamera
from .errors import ConfigError, PluginError, ValidationFailed, validation_problems
from .events import PluginEvent
from .storage.base import StorageBackend
from .transports.base import Transport

log = logging.getLogger(__name__)

#: Short area name -> entry-point group.
GROUPS: dict[str, str] = {
    "cameras": "valt.cameras",
    "transports": "valt.transports",
    "storage": "valt.storage",
    "auth": "valt.auth",
}

D = TypeVar("D")


@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin, as ``valt plugins`` and ``GET /api/v1/plugins`` show it."""

    group: str
    name: str
    distribution: str
    version: str
    module: str

    def as_dict(self) -> dict[str, str]:
        """JSON form."""
        return {
            "group": self.group,
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
        }


def _is_disabled(area: str, name: str, disabled: set[str]) -> bool:
    return name in disabled or f"{area}:{name}" in disabled or f"{GROUPS[area]}:{name}" in disabled


def _entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    seen: dict[tuple[str, str, str], importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=group):
        dist = ep.dist.name if ep.dist else "?"
        # The same distribution can be visible twice on sys.path (e.g. an editable install and a
        # stale build); that is one plugin, not a clash.
        seen.setdefault((ep.name, ep.value, dist), ep)
    return list(seen.values())


def _validate(model: type[BaseModel], data: Mapping[str, Any], what: str, error: type[Exception]) -> BaseModel:
    try:
        return model.model_validate(dict(data))
    except ValidationError as err:
        problems = validation_problems(err)
        text = "; ".join(f"{k}: {v}" for k, v in problems.items())
        if issubclass(error, ValidationFailed):
            fields = {f"config.{k}": v for k, v in problems.items()}
            raise error(f"bad config for {what}: {text}", fields=fields) from err
        raise error(f"bad config for {what}: {text}") from err


class PluginHost:
    """Loaded plugins and the drivers they registered, with typed calls into the hooks."""

    def __init__(self, pm: pluggy.PluginManager, plugins: list[PluginInfo]) -> None:
        self.pm = pm
        self.plugins = plugins
        self.camera_drivers = self._collect(pm.hook.valt_register_camera_drivers(), CameraDriver, "camera driver")
        self.transports = self._collect(pm.hook.valt_register_transports(), Transport, "transport")
        self.storage_backends = self._collect(pm.hook.valt_register_storage_backends(), StorageBackend,
                                              "storage backend")
        self.auth_backends = self._collect(pm.hook.valt_register_auth_backends(), AuthBackend, "auth backend")

    # --- loading ---------------------------------------------------------------------------

    @classmethod
    def load(cls, disable: Iterable[str] = (), extra_plugins: Iterable[object] = ()) -> "PluginHost":
        """Load every installed plugin except the disabled ones, with a fresh plugin manager.

        A plugin that fails to import, or two plugins with one name in a group, is a
        :class:`PluginError` naming the plugin and the cause. ``extra_plugins`` are registered
        as well (objects or modules with hook implementations; used by tests and embedders).
        """
        disabled = set(disable)
        pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        pm.add_hookspecs(hookspecs)
        infos: list[PluginInfo] = []
        for area, group in GROUPS.items():
            eps = _entry_points(group)
            by_name: dict[str, list[importlib.metadata.EntryPoint]] = {}
            for ep in eps:
                by_name.setdefault(ep.name, []).append(ep)
            for name, same in by_name.items():
                if len(same) > 1 and not _is_disabled(area, name, disabled):
                    where = ", ".join(f"{ep.value} ({ep.dist.name if ep.dist else '?'})" for ep in same)
                    raise PluginError(f"two plugins are named {name!r} in group {group}: {where}")
            wanted = sorted(n for n in by_name if not _is_disabled(area, n, disabled))
            if not wanted:
                continue

            def failed(_manager: Any, ep: Any, err: BaseException, group: str = group, area: str = area) -> None:
                dist = ep.dist.name if getattr(ep, "dist", None) else "?"
                raise PluginError(
                    f"plugin {ep.name!r} in group {group} (distribution {dist}) failed to load: "
                    f"{type(err).__name__}: {err}. Fix or uninstall it, or disable it in the "
                    f"settings: [plugins] disable = [\"{area}:{ep.name}\"]"
                ) from err

            def missing(names: Iterable[str], group: str = group) -> None:
                raise PluginError(f"entry points vanished while loading group {group}: {sorted(names)}")

            # stevedore keeps entry points per process; a plugin installed since then would be
            # visible to importlib.metadata above but not to stevedore: start from a fresh view.
            NamedExtensionManager.ENTRY_POINT_CACHE.pop(group, None)
            manager = NamedExtensionManager(
                group, names=wanted, name_order=True,
                on_load_failure_callback=failed, on_missing_entrypoints_callback=missing,
            )
            for ext in manager.extensions:
                # stevedore's entry-point cache drops the distribution; take it from metadata.
                dist = by_name[ext.name][0].dist
                pm.register(ext.plugin, name=f"{group}:{ext.name}")
                infos.append(PluginInfo(
                    group=group,
                    name=ext.name,
                    distribution=dist.name if dist else "?",
                    version=dist.version if dist else "?",
                    module=by_name[ext.name][0].value,
                ))
        for extra in extra_plugins:
            pm.register(extra)
        # A misspelled hook implementation must fail loudly, not be silently ignored.
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as err:
            raise PluginError(f"a plugin implements an unknown hook: {err}") from err
        return cls(pm, infos)

    @staticmethod
    def _collect(results: list[list[type[D]]], base: type, what: str) -> dict[str, type[D]]:
        found: dict[str, type[D]] = {}
        for classes in reversed(results):  # pluggy answers last-registered first
            if inspect.isawaitable(classes):
                classes.close()
                raise PluginError(f"a {what} registration hook must be a plain function, not async")
            for klass in classes or []:
                if not (isinstance(klass, type) and issubclass(klass, base)):
                    raise PluginError(f"{what} {klass!r} does not subclass {base.__module__}.{base.__name__}")
                name = getattr(klass, "name", None)
                if not name:
                    raise PluginError(f"{what} {klass.__module__}.{klass.__qualname__} has no name")
                if name in found:
                    raise PluginError(
                        f"two {what}s are named {name!r}: {found[name].__module__}."
                        f"{found[name].__qualname__} and {klass.__module__}.{klass.__qualname__}"
                    )
                found[name] = klass
        return found

    # --- drivers ---------------------------------------------------------------------------

    @staticmethod
    def _pick(registry: Mapping[str, type[D]], name: str, what: str) -> type[D]:
        try:
            return registry[name]
        except KeyError:
            known = ", ".join(sorted(registry)) or "none installed"
            raise ConfigError(f"unknown {what} {name!r} (known: {known})") from None

    def camera_driver_class(self, name: str) -> type[CameraDriver]:
        """The camera driver class called ``name``; :class:`ConfigError` if none is."""
        return self._pick(self.camera_drivers, name, "camera driver")

    def build_camera_driver(self, name: str, config: Mapping[str, Any]) -> CameraDriver:
        """A camera driver instance with ``config`` validated by its ``Config`` model.

        Unknown driver or bad config raise :class:`ValidationFailed` (a 400 in the API).
        """
        if name not in self.camera_drivers:
            known = ", ".join(sorted(self.camera_drivers)) or "none installed"
            raise ValidationFailed(f"unknown camera driver {name!r} (known: {known})")
        klass = self.camera_drivers[name]
        return klass(_validate(klass.Config, config, f"camera driver {name!r}", ValidationFailed))

    def build_storage_backend(self, name: str, options: Mapping[str, Any],
                              data_dir: Path | None = None) -> StorageBackend:
        """The storage backend ``name`` with its options validated (:class:`ConfigError` if bad).

        With ``data_dir``, the backend's own defaults below it fill the options not given.
        """
        klass = self._pick(self.storage_backends, name, "storage driver")
        if data_dir is not None:
            options = {**klass.default_options(data_dir), **options}
        return klass(_validate(klass.Config, options, f"storage driver {name!r}", ConfigError))

    def build_transport(self, name: str, options: Mapping[str, Any]) -> Transport:
        """The transport ``name`` with its options validated (:class:`ConfigError` if bad)."""
        klass = self._pick(self.transports, name, "transport")
        return klass(_validate(klass.Config, options, f"transport {name!r}", ConfigError))

    def build_auth_backend(self, name: str, options: Mapping[str, Any]) -> AuthBackend:
        """The auth backend ``name`` with its options validated (:class:`ConfigError` if bad)."""
        klass = self._pick(self.auth_backends, name, "auth backend")
        return klass(_validate(klass.Config, options, f"auth backend {name!r}", ConfigError))

    # --- hooks -----------------------------------------------------------------------------

    async def discover_cameras(self, timeout_s: float, addresses: list[str] | None = None) -> list[DiscoveredCamera]:
        """Ask every plugin to look for cameras, all at once; the merged list of what they found.

        A plugin whose probe raises is logged and skipped: one broken driver must not hide
        the cameras the others found.
        """
        calls = self.pm.hook.valt_discover_cameras(timeout_s=timeout_s, addresses=list(addresses or []))
        results = await asyncio.gather(*(_awaited(r) for r in calls), return_exceptions=True)
        found: list[DiscoveredCamera] = []
        for result in results:
            if isinstance(result, BaseException):
                log.error("camera discovery failed in a plugin: %s", result)
                continue
            found.extend(result or [])
        return found

    async def notify(self, event: PluginEvent) -> None:
        """Tell every plugin about ``event`` through its pluggy hook; a failing plugin is logged.

        The call goes through pluggy, so hook wrappers and call monitoring see it. An observer's
        bug must not stop a recording: each implementation is contained (its exception is
        logged, the others still run), and async implementations are awaited one by one.
        """
        caller = getattr(self.pm.hook, event.hook)
        for impl in caller.get_hookimpls():
            if not (impl.hookwrapper or getattr(impl, "wrapper", False)):
                _contain(impl, event.hook)
        try:
            results = caller(**event.arguments())
        except Exception:  # noqa: BLE001 - a wrapper's own failure, see the docstring
            log.exception("a hook wrapper failed in %s", event.hook)
            return
        for result in results or []:
            if inspect.isawaitable(result):
                await result


def _contain(impl: Any, hook: str) -> None:
    # Wrap the implementation once (plugins may be registered after loading) so that its
    # exception is logged where it happens: pluggy itself would stop at the first one.
    if getattr(impl.function, "valt_contained", False):
        return
    function = impl.function
    plugin = impl.plugin_name

    async def awaited(result: Any) -> None:
        try:
            await result
        except Exception:  # noqa: BLE001
            log.exception("plugin %s failed in hook %s", plugin, hook)

    def contained(*args: Any) -> Any:
        try:
            result = function(*args)
        except Exception:  # noqa: BLE001
            log.exception("plugin %s failed in hook %s", plugin, hook)
            return None
        return awaited(result) if inspect.isawaitable(result) else None

    contained.valt_contained = True  # type: ignore[attr-defined]
    impl.function = contained


async def _awaited(result: Any) -> Any:
    # With async implementations pluggy returns coroutines, with sync ones the answers.
    return await result if inspect.isawaitable(result) else result
