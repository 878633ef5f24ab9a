"""The search space of a sweep: the spec's declared space, narrowed or widened by
the user, plus every other hyperparameter fixed at its resolved value.

No TensorFlow here: the CLI checks a user's space (and a resumed sweep compares
fingerprints) before anything heavy is imported.

Command-line forms (repeatable `--space NAME=FORM`):

    learning_rate=1e-4..1e-2:log     a float range, log-sampled
    units=32..128:32                 an int range with step 32
    dropout=0.0..0.5                 a float range (ints when both ends are ints)
    activation=relu,tanh             a choice
    batch_norm=bool                  true or false
    widths=16..256:16                one width per layer, tied to the depth
                                     (widths_1 ... widths_D; widths_i only when depth >= i)
    widths=[64,32],[128,64,32]       a choice of whole width lists
    maxout_pieces=2..4 if activation=maxout
                                     searched only in trials whose activation is maxout

and fixed values with `--set NAME=VALUE` (or --epochs, --batch-size, --lr,
--optimizer). A TOML file holds the same as tables:

    [fix]
    depth = 2
    [space]
    learning_rate = { min = 1e-4, max = 1e-2, sampling = "log" }
    units = { min = 32, max = 128, step = 32 }
    activation = ["relu", "tanh"]
    batch_norm = "bool"
    widths = { min = 16, max = 256, step = 16 }      # per layer; or [[64, 32], [128, 64]]
    maxout_pieces = { min = 2, max = 4, when = { activation = "maxout" } }

A hyperparameter whose default is a list (`widths`) is searched one value per
layer (zoo.spec.PerLayer) or as a choice of whole lists; fixed, it takes a list
(`--set widths=128,64`, TOML `widths = [128, 64]`).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ZooError, did_you_mean
from zoo.spec import Boolean, Choice, Float, Int, ModelSpec, Param, PerLayer, layer_counts, parents_first

#: ranges for training hyperparameters every model has; added to the space when
#: the user asks to tune them (`--tune batch_size optimizer`)
TRAINING_SPACE: Mapping[str, Param] = {
    "batch_size": Choice(16, 32, 64, 128),
    "optimizer": Choice("adam", "rmsprop", "nesterov", "sgd"),
    "learning_rate": Float(1e-4, 1e-1, sampling="log"),
    "dropout": Float(0.0, 0.5, step=0.1),
}


@dataclass(frozen=True)
class SweepSpace:
    """What varies (`params`, parents before the ranges that depend on them) and
    what is fixed (`fixed`, every other hyperparameter). `notes` say what the
    space left out and why, for the sweep's plan."""

    params: Mapping[str, Param]
    fixed: Mapping[str, Any]
    notes: tuple[str, ...] = field(default=(), compare=False)

    def describe(self) -> dict[str, str]:
        return {name: p.describe() for name, p in self.params.items()}

    def to_json(self) -> dict[str, Any]:
        return {"params": {n: {"type": type(p).__name__, **_fields(p)} for n, p in self.params.items()},
                "fixed": dict(self.fixed)}

    def fingerprint(self) -> str:
        """A hash of the space: a resumed sweep must have the same one."""
        text = json.dumps(self.to_json(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def defaults(self) -> dict[str, Any]:
        return dict(self.fixed)

    def column_names(self) -> list[str]:
        """The names a trial's searched values are recorded under (widths_1, ...)."""
        out = []
        for name, p in self.params.items():
            if isinstance(p, PerLayer):
                out += [f"{name}_{i}" for i in range(1, max(layer_counts(p, self.params, self.fixed)) + 1)]
            else:
                out.append(name)
        return out


def _fields(p: Param) -> dict[str, Any]:
    when = {"when": [[k, list(v)] for k, v in p.when]} if getattr(p, "when", ()) else {}
    if isinstance(p, PerLayer):
        return {"width": {"type": type(p.width).__name__, **_fields(p.width)}, "depth": p.depth, **when}
    if isinstance(p, Choice):
        return {"values": [list(v) if isinstance(v, tuple) else v for v in p.values], **when}
    if isinstance(p, Boolean):
        return when
    return {"min": p.min, "max": p.max, "step": p.step, "sampling": p.sampling, **when}


def parse_form(name: str, text: str) -> Param:
    """A `--space` form (see the module docstring) as a Param."""
    text = text.strip()
    body, sep, condition = text.partition(" if ")
    if sep:
        return _with_when(parse_form(name, body), parse_condition(name, condition))
    if text.startswith("["):
        try:
            lists = json.loads(f"[{text}]")
        except ValueError:
            raise ZooError(f"--space {name}: {text!r} is not a list of lists like [64,32],[128,64]") from None
        return _list_choice(name, lists)
    if text.lower() in ("bool", "boolean"):
        return Boolean()
    if ".." in text:
        body, _, suffix = text.partition(":")
        lo_text, _, hi_text = body.partition("..")
        try:
            lo, hi = _number(lo_text), _number(hi_text)
        except ValueError:
            raise ZooError(f"--space {name}: {text!r} is not a range like 1e-4..1e-2:log or 16..256:16") from None
        sampling, step = "linear", None
        if suffix:
            if suffix in ("log", "linear", "reverse_log"):
                sampling = suffix
            else:
                try:
                    step = _number(suffix)
                except ValueError:
                    raise ZooError(f"--space {name}: after ':' give log or a step, got {suffix!r}") from None
        return _range(name, lo, hi, step, sampling)
    values = [_scalar(v) for v in text.split(",") if v.strip()]
    if not values:
        raise ZooError(f"--space {name}: give a range (a..b), choices (a,b,c) or bool")
    return Choice(*values)


def parse_condition(name: str, text: str) -> dict[str, list]:
    """`activation=maxout` or `depth=2,3` (after ` if `) as {parent: [values]}."""
    parent, eq, values = text.partition("=")
    if not eq or not parent.strip() or not values.strip():
        raise ZooError(f"--space {name}: the condition after 'if' must read PARENT=VALUE[,VALUE...], got {text!r}")
    return {parent.strip(): [_scalar(v) for v in values.split(",") if v.strip()]}


def _with_when(p: Param, when: Mapping[str, Any]) -> Param:
    from dataclasses import replace

    if isinstance(p, Choice):
        return Choice(*p.values, when=when)
    return replace(p, when=when)


def _list_choice(name: str, lists: Any) -> Choice:
    """A choice of whole lists (e.g. width lists), kept as tuples."""
    if not (isinstance(lists, list) and lists and all(isinstance(v, list) and v for v in lists)):
        raise ZooError(f"{name!r}: a choice of lists must be non-empty lists, e.g. [64,32],[128,64]; got {lists!r}")
    return Choice(*(tuple(v) for v in lists))


def _range(name: str, lo: Any, hi: Any, step: Any = None, sampling: str = "linear") -> Param:
    if not lo < hi:
        raise ZooError(f"search range of {name!r} must have min < max, got {lo}..{hi}")
    if sampling == "log" and lo <= 0:
        raise ZooError(f"log-sampled range of {name!r} must be positive, got {lo}..{hi}")
    if isinstance(lo, int) and isinstance(hi, int) and (step is None or isinstance(step, int)):
        return Int(lo, hi, step=step or 1, sampling=sampling)
    return Float(float(lo), float(hi), sampling=sampling, step=float(step) if step is not None else None)


def _number(text: str) -> int | float:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        return float(text)


def _scalar(text: str) -> Any:
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        return text


def from_toml_value(name: str, value: Any) -> Param:
    """A `[space]` entry of a TOML file as a Param."""
    if isinstance(value, list):
        if value and all(isinstance(v, list) for v in value):
            return _list_choice(name, value)
        return Choice(*value)
    if isinstance(value, str):
        return parse_form(name, value)
    if isinstance(value, dict):
        unknown = set(value) - {"min", "max", "step", "sampling", "values", "when"}
        if unknown:
            raise ZooError(f"space entry {name!r}: unknown keys {sorted(unknown)}; use min, max, step, sampling, "
                           "values or when")
        when = value.get("when")
        if when is not None and not isinstance(when, dict):
            raise ZooError(f"space entry {name!r}: when must be a table like {{ activation = \"maxout\" }}")
        if "values" in value:
            p = from_toml_value(name, list(value["values"]))
        elif "min" not in value or "max" not in value:
            raise ZooError(f"space entry {name!r} needs min and max (or values)")
        else:
            p = _range(name, value["min"], value["max"], value.get("step"), value.get("sampling", "linear"))
        return _with_when(p, when) if when else p
    raise ZooError(f"space entry {name!r} must be a list, a table or a form string, got {value!r}")


def read_toml(path: str | Path) -> tuple[dict[str, Any], dict[str, Param]]:
    """(fixed values, ranges) from a TOML file with [fix] and [space] tables."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ZooError(f"space file {str(path)!r} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ZooError(f"space file {str(path)!r} is not valid TOML: {exc}") from None
    unknown = set(data) - {"fix", "space"}
    if unknown:
        raise ZooError(f"space file {str(path)!r}: unknown tables {sorted(unknown)}; use [fix] and [space]")
    fixed = dict(data.get("fix", {}))
    ranges = {name: from_toml_value(name, v) for name, v in data.get("space", {}).items()}
    return fixed, ranges


def build_space(spec: ModelSpec, *, fixed: Mapping[str, Any] | None = None, ranges: Mapping[str, Param | str] | None = None,
                tune: tuple[str, ...] | list[str] = (), space_file: str | Path | None = None,
                only_named: bool = False) -> SweepSpace:
    """The sweep's space for `spec`.

    Starts from the spec's declared search space (unless `only_named`: then only
    the ranges the caller names, as a grid search wants); `tune` adds the
    built-in ranges of training hyperparameters (batch_size, optimizer, ...);
    the file's and then `ranges`' entries replace or add ranges; the file's and
    then `fixed`'s values take hyperparameters out of the search. Everything
    else is fixed at the spec's default. Unknown names are errors with a suggestion.
    """
    known = spec.hyperparameters()
    params: dict[str, Param] = {} if only_named else dict(spec.search_space)
    named: dict[str, Param] = {}
    for name in tune:
        if name in TRAINING_SPACE:
            named.setdefault(name, TRAINING_SPACE[name])
        elif name in spec.search_space:
            named.setdefault(name, spec.search_space[name])
        else:
            raise ZooError(f"--tune {name}: no built-in range for it." + did_you_mean(name, [*TRAINING_SPACE, *spec.search_space])
                           + f" Built-in: {', '.join(TRAINING_SPACE)}; give others a range with --space {name}=...")
    all_fixed: dict[str, Any] = {}
    if space_file is not None:
        file_fixed, file_ranges = read_toml(space_file)
        named.update(file_ranges)
        all_fixed.update(file_fixed)
    for name, value in (ranges or {}).items():
        named[name] = parse_form(name, value) if isinstance(value, str) else value
    all_fixed.update(fixed or {})
    for name in [*named, *all_fixed]:
        if name not in known:
            raise ZooError(f"model {spec.name!r} has no hyperparameter {name!r}." + did_you_mean(name, known)
                           + f" Known: {', '.join(sorted(known))}.")
    notes: list[str] = []
    # a per-layer range the spec declares gives way to what it overrides, when the user names that
    for name, p in list(params.items()):
        if isinstance(p, PerLayer) and name not in named:
            taken = [r for r in p.replaces if r in named or r in all_fixed]
            if taken:
                params.pop(name)
                notes.append(f"{name} is not searched per layer: you gave {', '.join(taken)}, which {name} would override")
    params.update(named)
    for name in all_fixed:
        params.pop(name, None)
    resolved = spec.resolve(all_fixed)  # parses CLI strings by the default's type
    for name, p in list(params.items()):
        params[name] = _check_param(name, p, known[name])
    # a fixed width list makes the depth (and the uniform width) it overrides irrelevant
    for name in [n for n in all_fixed if isinstance(known[n], list) and resolved[n]]:
        spec_range = spec.search_space.get(name)
        couple = [spec_range.depth, *spec_range.replaces] if isinstance(spec_range, PerLayer) else []
        dropped = [c for c in couple if c in params and c not in named]
        for c in dropped:
            params.pop(c)
        if dropped:
            notes.append(f"{', '.join(dropped)} not searched: {name}={resolved[name]} fixes the layers")
    params = _check_conditions(params, resolved)
    return SweepSpace(params=params, fixed=dict(resolved), notes=tuple(notes))


def _check_param(name: str, p: Param, default: Any) -> Param:
    """A range must fit the hyperparameter's type (an int range for an int, a
    per-layer range or a choice of lists for a list, ...)."""
    if isinstance(default, list):
        if isinstance(p, PerLayer):
            return p
        if isinstance(p, Choice) and all(isinstance(v, tuple) for v in p.values):
            return p
        if isinstance(p, Int) or (isinstance(p, Choice) and all(isinstance(v, int) and not isinstance(v, bool)
                                                                   for v in p.values)):
            return PerLayer(_without_when(p), when={k: v for k, v in p.when} or None)
        raise ZooError(f"{name!r} is a list (one value per layer): search it per layer with a whole-number range or "
                       f"choice (--space {name}=16..256:16 or {name}=32,64,128), or as a choice of lists "
                       f"(--space '{name}=[64,32],[128,64]')")
    if isinstance(p, PerLayer) or (isinstance(p, Choice) and any(isinstance(v, tuple) for v in p.values)):
        raise ZooError(f"{name!r} takes one value ({default!r} by default), not one per layer")
    if isinstance(default, bool):
        if not isinstance(p, (Boolean, Choice)):
            raise ZooError(f"{name!r} is true/false: use --space {name}=bool")
    elif isinstance(default, int) and isinstance(p, Float):
        raise ZooError(f"{name!r} is a whole number: give an int range (e.g. {int(p.min)}..{int(p.max)})")
    elif isinstance(default, float) and isinstance(p, Int):  # 0..1 for a float means a float range
        return Float(float(p.min), float(p.max), sampling=p.sampling, step=float(p.step) if p.step != 1 else None,
                     when={k: v for k, v in p.when} or None)
    return p


def _without_when(p: Param) -> Param:
    from dataclasses import replace

    return Choice(*p.values) if isinstance(p, Choice) else replace(p, when=None)


def _check_conditions(params: dict[str, Param], fixed: Mapping[str, Any]) -> dict[str, Param]:
    """Order the ranges parents first; a condition on a fixed hyperparameter is
    dropped when the fixed value meets it and is an error when it never can."""
    ordered: dict[str, Param] = {}
    for name, p in params.items():
        when = []
        for parent, values in p.when:
            if parent == name:
                raise ZooError(f"{name!r} cannot depend on itself")
            if parent in params:
                _check_condition_values(name, parent, values, params[parent])
                when.append((parent, values))
            elif fixed.get(parent) not in values:
                raise ZooError(f"{name!r} is searched only when {parent} is one of {list(values)}, but {parent} is "
                               f"fixed at {fixed.get(parent)!r}: search {parent} too, or drop the condition")
        if isinstance(p, PerLayer) and p.depth in params and not isinstance(params[p.depth], (Int, Choice)):
            raise ZooError(f"{name!r} is one width per layer: its depth {p.depth!r} must be an int range or a choice")
        if len(when) != len(p.when):
            p = _with_when(_without_when(p), dict(when)) if when else _without_when(p)
        ordered[name] = p
    return parents_first(ordered)


def _check_condition_values(name: str, parent: str, values: tuple, parent_range: Param) -> None:
    if isinstance(parent_range, Choice):
        allowed = list(parent_range.values)
    elif isinstance(parent_range, Boolean):
        allowed = [True, False]
    elif isinstance(parent_range, Int):
        allowed = list(range(parent_range.min, parent_range.max + 1, parent_range.step or 1))
    else:
        raise ZooError(f"{name!r} cannot depend on {parent!r}: a condition needs a choice, an int range or a boolean, "
                       f"not a float range")
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ZooError(f"{name!r} depends on {parent} being {bad}, which {parent}'s range ({parent_range.describe()}) "
                       "never gives")
