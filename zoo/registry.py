"""The registries: every model, dataset, command and callback arrives through an
entry-point group, the built-ins declared in this project's pyproject.toml exactly
as a third party declares theirs (as flake8 registers its own checks).

    zoo.models      a zoo.spec.ModelSpec (or a function returning one)
    zoo.datasets    a zoo.spec.DatasetSource: a name or URI scheme -> raw arrays
    zoo.commands    a zoo.spec.Command: a `zoo` sub-command
    zoo.callbacks   a Keras callback class, or a function returning a callback

One `Registry` per group, all with the same behaviour: listing names reads
entry-point metadata only (no plugin import, no TensorFlow); an object is imported
when used; a plugin that fails to load is recorded with its distribution, version
and error and never stops the others; a name two distributions register is an
error naming both, and `DIST:NAME` (e.g. `keras-zoo:mlp`) picks one; unknown names
get a "did you mean".
"""

from __future__ import annotations

import fnmatch
import importlib.metadata as md
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zoo.errors import PluginError, ZooError, did_you_mean
from zoo.spec import SUPPORTED_API_VERSIONS, Command, DatasetSource, ModelSpec, PluginSpecInvalid


@dataclass(frozen=True)
class Entry:
    """One entry point and the distribution that declares it."""

    name: str
    value: str
    dist: str
    version: str
    group: str = "zoo.models"

    @property
    def origin(self) -> str:
        return f"{self.dist} {self.version}"

    @property
    def qualified(self) -> str:
        """DIST:NAME, the name that always means this entry."""
        return f"{normalise(self.dist)}:{self.name}"


@dataclass(frozen=True)
class Broken:
    """A plugin that could not be loaded, and why."""

    entry: Entry
    error: str

    def __str__(self) -> str:
        # the error already names the plugin, its distribution and entry point (see _where)
        return self.error


def normalise(dist: str) -> str:
    """A distribution name as pip compares them: lower case, runs of -_. as one '-'."""
    return re.sub(r"[-_.]+", "-", dist).lower()


class Registry:
    """The plugins of one entry-point group: `what` names them in messages,
    `accept(entry, obj)` checks (and may convert) a loaded object or raises
    PluginError saying what is wrong."""

    def __init__(self, group: str, what: str, accept: Callable[[Entry, Any], Any]) -> None:
        self.group, self.what, self.accept = group, what, accept
        self._loaded: dict[str, Any] = {}
        self._broken: dict[str, Broken] = {}

    # --- names, without imports -------------------------------------------------------

    def entries(self) -> dict[str, list[Entry]]:
        """Entry points by name; a name with two or more entries is a conflict."""
        found: dict[str, list[Entry]] = {}
        for ep in md.entry_points(group=self.group):
            dist = ep.dist
            entry = Entry(ep.name, ep.value, dist.name if dist else "?", dist.version if dist else "?", self.group)
            if entry not in found.get(ep.name, []):
                found.setdefault(ep.name, []).append(entry)
        return found

    def names(self, pattern: str | None = None) -> list[str]:
        return sorted(n for n in self.entries() if pattern is None or fnmatch.fnmatch(n, pattern))

    def entry(self, name: str) -> Entry:
        """The one entry `name` (or DIST:NAME) means; a ZooError when none or two."""
        found = self.entries()
        dist, sep, short = name.rpartition(":")
        if sep:
            matches = [e for e in found.get(short, []) if normalise(e.dist) == normalise(dist)]
            if matches:
                return matches[0]
            others = ", ".join(e.qualified for e in found.get(short, []))
            raise ZooError(f"no {self.what} {short!r} from a distribution {dist!r}"
                           + (f"; installed: {others}" if others else did_you_mean(short, found)))
        if name not in found:
            lowered = name.lower()
            if lowered != name and lowered in found:
                return self.entry(lowered)
            broken = [b for b in self._broken.values() if b.entry.name.startswith(lowered)]
            hint = f" A plugin that may provide it is installed but broken: {broken[0]}" if broken else ""
            raise ZooError(f"unknown {self.what} {name!r}." + did_you_mean(name, found)
                           + f" Run `zoo {self.listing}` to see all." + hint)
        if len(found[name]) > 1:
            raise PluginError(f"{self.what} name {name!r} is registered by {len(found[name])} distributions: "
                              + " and ".join(f"{e.qualified} ({e.origin}, {e.value})" for e in found[name])
                              + ". Use the qualified name, or uninstall one of them.")
        return found[name][0]

    @property
    def listing(self) -> str:
        return {"zoo.models": "list", "zoo.datasets": "datasets", "zoo.commands": "--help"}.get(self.group, "doctor")

    # --- objects, imported on use ----------------------------------------------------------

    def get(self, name: str) -> Any:
        """The object registered under `name` (or DIST:NAME)."""
        entry = self.entry(name)
        key = entry.qualified
        if key in self._loaded:
            return self._loaded[key]
        if key in self._broken:
            raise PluginError(str(self._broken[key]))
        try:
            obj = self.accept(entry, self._import(entry))
        except PluginError as exc:
            self._broken[key] = Broken(entry, str(exc))
            raise
        self._loaded[key] = obj
        return obj

    def _import(self, entry: Entry) -> Any:
        ep = md.EntryPoint(entry.name, entry.value, self.group)
        try:
            return ep.load()
        except PluginSpecInvalid as exc:  # the module built a spec this core refuses
            raise PluginError(f"{_where(entry)} is not a valid {self.what}: {exc}"
                              + _api_hint(entry, getattr(exc, "api_version", None))) from exc
        except Exception as exc:  # a plugin's import error must not break the others
            raise PluginError(f"{_where(entry)} failed to import: {type(exc).__name__}: {exc}. "
                              f"Fix or uninstall {entry.dist}; the other plugins still work.") from exc

    def load_all(self, pattern: str | None = None) -> tuple[list[Any], list[Broken]]:
        """Every object matching `pattern` (a conflict loads each distribution's,
        by qualified name); failures are returned, not raised."""
        loaded, broken = [], []
        for name, found in self.entries().items():
            if pattern is not None and not fnmatch.fnmatch(name, pattern):
                continue
            for entry in found:
                try:
                    loaded.append(self.get(entry.qualified if len(found) > 1 else name))
                except PluginError:
                    broken.append(self._broken.get(entry.qualified) or Broken(entry, f"{_where(entry)} failed"))
        return loaded, broken

    def problems(self) -> list[str]:
        """Every problem known so far: failed loads and names two distributions register."""
        out = [str(b) for b in self._broken.values()]
        for name, dup in self.entries().items():
            if len(dup) > 1:
                out.append(f"{self.what} name {name!r} is registered by {len(dup)} distributions: "
                           + " and ".join(e.qualified for e in dup) + " (use the qualified name)")
        return out

    def origin(self, name: str) -> dict[str, str]:
        """Which distribution supplies `name`: for provenance records."""
        entry = self.entry(name)
        return {"name": entry.name, "distribution": entry.dist, "version": entry.version, "entry_point": entry.value}

    def clear(self) -> None:
        self._loaded.clear()
        self._broken.clear()


def _where(entry: Entry) -> str:
    return f"plugin {entry.name!r} from {entry.origin} ({entry.value})"


def _api_hint(entry: Entry, api_version: int | None) -> str:
    """What to do about a plugin written for a spec API version this core lacks."""
    if api_version is None or api_version in SUPPORTED_API_VERSIONS:
        return ""
    newer = isinstance(api_version, int) and api_version > max(SUPPORTED_API_VERSIONS)
    return (f". Upgrade keras-zoo, or install a release of {entry.dist} written for spec API version "
            f"{max(SUPPORTED_API_VERSIONS)}." if newer else
            f". Upgrade {entry.dist} to a release written for spec API version {max(SUPPORTED_API_VERSIONS)}.")


def _call_factory(entry: Entry, factory):
    try:
        return factory()
    except Exception as exc:
        raise PluginError(f"{_where(entry)} failed to create its object: {type(exc).__name__}: {exc}") from exc


# --- what each group accepts --------------------------------------------------------------


def _accept_model(entry: Entry, obj: Any) -> ModelSpec:
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


def _accept_dataset(entry: Entry, obj: Any) -> DatasetSource:
    if not isinstance(obj, DatasetSource):
        raise PluginError(f"{_where(entry)} is a {type(obj).__name__}, not a zoo.spec.DatasetSource")
    if obj.name != entry.name:
        raise PluginError(f"{_where(entry)} holds a dataset named {obj.name!r}; the entry-point name must match")
    return obj


def _accept_command(entry: Entry, obj: Any) -> Command:
    obj = getattr(obj, "command", obj)  # a function decorated with zoo.commands.command
    if not isinstance(obj, Command):
        raise PluginError(f"{_where(entry)} is a {type(obj).__name__}, not a zoo.spec.Command "
                          "(decorate the function with zoo.commands.command)")
    if obj.name != entry.name:
        raise PluginError(f"{_where(entry)} holds a command named {obj.name!r}; the entry-point name must match")
    return obj


def _accept_callback(entry: Entry, obj: Any) -> Callable[..., Any]:
    if not callable(obj):
        raise PluginError(f"{_where(entry)} is a {type(obj).__name__}, not a Keras callback class or a function "
                          "returning a callback")
    return obj


models = Registry("zoo.models", "model", _accept_model)
datasets = Registry("zoo.datasets", "dataset", _accept_dataset)
commands = Registry("zoo.commands", "command", _accept_command)
callbacks = Registry("zoo.callbacks", "callback", _accept_callback)
GROUPS = {r.group: r for r in (models, datasets, commands, callbacks)}
GROUP = models.group


# --- the models' API (what the rest of the zoo and plugins call) ----------------------------------


def entries() -> dict[str, list[Entry]]:
    return models.entries()


def names(pattern: str | None = None) -> list[str]:
    """Registered model names (optionally matching a glob), without importing any."""
    return models.names(pattern)


def clear_cache() -> None:
    """Forget loaded plugins and failures (after installing or removing plugins)."""
    for registry in GROUPS.values():
        registry.clear()


def get_spec(name: str) -> ModelSpec:
    """The spec registered under `name` (or DIST:NAME); a ZooError says why when there is none."""
    return models.get(name)


def load_all(pattern: str | None = None) -> tuple[list[ModelSpec], list[Broken]]:
    return models.load_all(pattern)


def list_models(pattern: str | None = None, *, task: str | None = None, family: str | None = None,
                capability: str | None = None) -> list[str]:
    """Names of the working models matching a glob and field filters.

    Without field filters nothing is imported; with them, the matching specs are.
    Broken plugins are left out here and reported by `problems()`; a name two
    distributions register is listed by its qualified names. An unknown task,
    family or capability is a ZooError with a suggestion.
    """
    if task is None and family is None and capability is None:
        found = entries()
        return [n if len(found[n]) == 1 else e.qualified for n in names(pattern) for e in found[n]
                if not _is_broken(e)]
    specs, _ = load_all(pattern)
    check_filters(specs, task=task, family=family, capability=capability)
    found = entries()
    return [
        s.name if len(found.get(s.name, [])) == 1 else _qualified_name(s, found)
        for s in specs
        if (task is None or task in s.tasks)
        and (family is None or s.family == family)
        and (capability is None or capability in s.all_capabilities)
    ]


def _is_broken(entry: Entry) -> bool:
    return entry.qualified in models._broken


def _qualified_name(spec: ModelSpec, found: dict[str, list[Entry]]) -> str:
    for entry in found.get(spec.name, []):
        if models._loaded.get(entry.qualified) is spec:
            return entry.qualified
    return spec.name


def check_filters(specs: list[ModelSpec], **filters: str | None) -> None:
    """Refuse a filter value no loaded spec has (a typo lists nothing otherwise)."""
    from zoo.spec import TASKS

    known = {"task": sorted({*TASKS, *(t for s in specs for t in s.tasks)}),
             "family": sorted({s.family for s in specs}),
             "capability": sorted({c for s in specs for c in s.all_capabilities})}
    for what, value in filters.items():
        if value is not None and value not in known[what]:
            raise ZooError(f"unknown {what} {value!r}." + did_you_mean(value, known[what])
                           + f" Known: {', '.join(known[what])}.")


def problems() -> list[str]:
    """Every model plugin problem known so far: duplicates and failed loads."""
    return models.problems()
