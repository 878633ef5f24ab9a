"""The model registry: every family arrives through the `zoo.models` entry points.

Listing names reads entry-point metadata only (no plugin import, no TensorFlow).
A spec is imported when used: `get_spec`, or a listing filter on its fields.
A plugin that fails to load is recorded with its distribution, version and error
and never stops the others.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata as md
from dataclasses import dataclass

from zoo.errors import PluginError, ZooError, did_you_mean
from zoo.spec import SUPPORTED_API_VERSIONS, ModelSpec, PluginSpecInvalid

GROUP = "zoo.models"


@dataclass(frozen=True)
class Entry:
    """One `zoo.models` entry point and the distribution that declares it."""

    name: str
    value: str
    dist: str
    version: str

    @property
    def origin(self) -> str:
        return f"{self.dist} {self.version}"


@dataclass(frozen=True)
class Broken:
    """A plugin that could not be loaded, and why."""

    entry: Entry
    error: str

    def __str__(self) -> str:
        # the error already names the plugin, its distribution and entry point (see _where)
        return self.error


_specs: dict[str, ModelSpec] = {}
_broken: dict[str, Broken] = {}


def entries() -> dict[str, list[Entry]]:
    """Entry points by name; a name with two or more entries is a conflict."""
    found: dict[str, list[Entry]] = {}
    for ep in md.entry_points(group=GROUP):
        dist = ep.dist
        entry = Entry(ep.name, ep.value, dist.name if dist else "?", dist.version if dist else "?")
        if entry not in found.get(ep.name, []):
            found.setdefault(ep.name, []).append(entry)
    return found


def names(pattern: str | None = None) -> list[str]:
    """Registered model names (optionally matching a glob), without importing any."""
    return sorted(n for n in entries() if pattern is None or fnmatch.fnmatch(n, pattern))


def clear_cache() -> None:
    """Forget loaded specs and failures (after installing or removing plugins)."""
    _specs.clear()
    _broken.clear()


def _load(entry: Entry) -> ModelSpec:
    ep = md.EntryPoint(entry.name, entry.value, GROUP)
    try:
        obj = ep.load()
    except PluginSpecInvalid as exc:  # the module built a ModelSpec this core refuses
        raise PluginError(f"{_where(entry)} is not a valid spec: {exc}"
                          + _api_hint(entry, getattr(exc, "api_version", None))) from exc
    except Exception as exc:  # a plugin's import error must not break the others
        raise PluginError(f"{_where(entry)} failed to import: {type(exc).__name__}: {exc}. "
                          f"Fix or uninstall {entry.dist}; the other models still work.") from exc
    if callable(obj) and not isinstance(obj, ModelSpec):
        obj = _call_factory(entry, obj)
    if not isinstance(obj, ModelSpec):
        raise PluginError(f"{_where(entry)} is a {type(obj).__name__}, not a zoo.spec.ModelSpec; "
                          "its entry point must name a ModelSpec (module:attribute) or a function returning one")
    problems = obj.problems()
    if problems:
        raise PluginError(f"{_where(entry)} is not a valid spec: " + "; ".join(problems)
                          + _api_hint(entry, obj.api_version))
    if obj.name != entry.name:
        raise PluginError(f"{_where(entry)} holds a spec named {obj.name!r}; the entry-point name must match")
    return obj


def _call_factory(entry: Entry, factory):
    try:
        return factory()
    except Exception as exc:
        raise PluginError(f"{_where(entry)} failed to create its spec: {type(exc).__name__}: {exc}") from exc


def _api_hint(entry: Entry, api_version: int | None) -> str:
    """What to do about a plugin written for a spec API version this core lacks."""
    if api_version is None or api_version in SUPPORTED_API_VERSIONS:
        return ""
    newer = isinstance(api_version, int) and api_version > max(SUPPORTED_API_VERSIONS)
    return (f". Upgrade keras-zoo, or install a release of {entry.dist} written for spec API version "
            f"{max(SUPPORTED_API_VERSIONS)}." if newer else
            f". Upgrade {entry.dist} to a release written for spec API version {max(SUPPORTED_API_VERSIONS)}.")


def _where(entry: Entry) -> str:
    return f"plugin {entry.name!r} from {entry.origin} ({entry.value})"


def get_spec(name: str) -> ModelSpec:
    """The spec registered under `name`; a ZooError says why when there is none."""
    if name in _specs:
        return _specs[name]
    if name in _broken:
        raise PluginError(str(_broken[name]))
    found = entries()
    if name not in found:
        lowered = name.lower()
        if lowered != name and lowered in found:
            return get_spec(lowered)
        broken = [b for b in _broken.values() if b.entry.name.startswith(lowered)]
        hint = f" A plugin that may provide it is installed but broken: {broken[0]}" if broken else ""
        raise ZooError(f"unknown model {name!r}." + did_you_mean(name, found) + " Run `zoo list` to see all." + hint)
    if len(found[name]) > 1:
        raise PluginError(
            f"model name {name!r} is registered twice: by "
            + " and by ".join(f"{e.origin} ({e.value})" for e in found[name])
            + ". Uninstall one of them."
        )
    try:
        spec = _load(found[name][0])
    except PluginError as exc:
        _broken[name] = Broken(found[name][0], str(exc))
        raise
    _specs[name] = spec
    return spec


def load_all(pattern: str | None = None) -> tuple[list[ModelSpec], list[Broken]]:
    """Load every spec matching `pattern`; failures are returned, not raised."""
    specs, broken = [], []
    found = entries()
    for name in names(pattern):
        try:
            specs.append(get_spec(name))
        except PluginError as exc:
            broken.append(_broken.get(name) or Broken(found[name][0], str(exc)))
    return specs, broken


def list_models(pattern: str | None = None, *, task: str | None = None, family: str | None = None,
                capability: str | None = None) -> list[str]:
    """Names of the working models matching a glob and field filters.

    Without field filters nothing is imported; with them, the matching specs are.
    Broken plugins are left out here and reported by `problems()`.
    """
    if task is None and family is None and capability is None:
        found = entries()
        return [n for n in names(pattern) if n not in _broken and len(found[n]) == 1]
    specs, _ = load_all(pattern)
    return [
        s.name for s in specs
        if (task is None or task in s.tasks)
        and (family is None or s.family == family)
        and (capability is None or capability in s.all_capabilities)
    ]


def problems() -> list[str]:
    """Every plugin problem known so far: duplicates and failed loads."""
    out = [str(b) for b in _broken.values()]
    for name, dup in entries().items():
        if len(dup) > 1:
            out.append(f"model name {name!r} is registered twice: by " + " and by ".join(e.origin for e in dup))
    return out


def check_filter(value: str | None, known: list[str], what: str) -> None:
    """Refuse an unknown filter value with a suggestion."""
    if value is not None and value not in known:
        raise ZooError(f"unknown {what} {value!r}." + did_you_mean(value, known) + f" Known: {', '.join(known)}.")
