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

and fixed values with `--set NAME=VALUE` (or --epochs, --batch-size, --lr,
--optimizer). A TOML file holds the same as tables:

    [fix]
    depth = 2
    [space]
    learning_rate = { min = 1e-4, max = 1e-2, sampling = "log" }
    units = { min = 32, max = 128, step = 32 }
    activation = ["relu", "tanh"]
    batch_norm = "bool"
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ZooError, did_you_mean
from zoo.spec import Boolean, Choice, Float, Int, ModelSpec, Param

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
    """What varies (`params`) and what is fixed (`fixed`, every other hyperparameter)."""

    params: Mapping[str, Param]
    fixed: Mapping[str, Any]

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


def _fields(p: Param) -> dict[str, Any]:
    if isinstance(p, Choice):
        return {"values": list(p.values)}
    if isinstance(p, Boolean):
        return {}
    return {"min": p.min, "max": p.max, "step": p.step, "sampling": p.sampling}


def parse_form(name: str, text: str) -> Param:
    """A `--space` form (see the module docstring) as a Param."""
    text = text.strip()
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
        return Choice(*value)
    if isinstance(value, str):
        return parse_form(name, value)
    if isinstance(value, dict):
        unknown = set(value) - {"min", "max", "step", "sampling", "values"}
        if unknown:
            raise ZooError(f"space entry {name!r}: unknown keys {sorted(unknown)}; use min, max, step, sampling or values")
        if "values" in value:
            return Choice(*value["values"])
        if "min" not in value or "max" not in value:
            raise ZooError(f"space entry {name!r} needs min and max (or values)")
        return _range(name, value["min"], value["max"], value.get("step"), value.get("sampling", "linear"))
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
                tune: tuple[str, ...] | list[str] = (), space_file: str | Path | None = None) -> SweepSpace:
    """The sweep's space for `spec`.

    Starts from the spec's declared search space; `tune` adds the built-in ranges
    of training hyperparameters (batch_size, optimizer, ...); the file's and then
    `ranges`' entries replace or add ranges; the file's and then `fixed`'s values
    take hyperparameters out of the search. Everything else is fixed at the
    spec's default. Unknown names are errors with a suggestion.
    """
    known = spec.hyperparameters()
    params: dict[str, Param] = dict(spec.search_space)
    for name in tune:
        if name in TRAINING_SPACE:
            params.setdefault(name, TRAINING_SPACE[name])
        elif name in spec.search_space:
            continue
        else:
            raise ZooError(f"--tune {name}: no built-in range for it." + did_you_mean(name, [*TRAINING_SPACE, *spec.search_space])
                           + f" Built-in: {', '.join(TRAINING_SPACE)}; give others a range with --space {name}=...")
    all_fixed: dict[str, Any] = {}
    if space_file is not None:
        file_fixed, file_ranges = read_toml(space_file)
        params.update(file_ranges)
        all_fixed.update(file_fixed)
    for name, value in (ranges or {}).items():
        params[name] = parse_form(name, value) if isinstance(value, str) else value
    all_fixed.update(fixed or {})
    for name in [*params, *all_fixed]:
        if name not in known:
            raise ZooError(f"model {spec.name!r} has no hyperparameter {name!r}." + did_you_mean(name, known)
                           + f" Known: {', '.join(sorted(known))}.")
    for name in all_fixed:
        params.pop(name, None)
    resolved = spec.resolve(all_fixed)  # parses CLI strings by the default's type
    for name, p in list(params.items()):
        params[name] = _check_param(name, p, known[name])
    return SweepSpace(params=params, fixed={k: v for k, v in resolved.items()})


def _check_param(name: str, p: Param, default: Any) -> Param:
    """A range must fit the hyperparameter's type (an int range for an int, ...)."""
    if isinstance(default, bool):
        if not isinstance(p, (Boolean, Choice)):
            raise ZooError(f"{name!r} is true/false: use --space {name}=bool")
    elif isinstance(default, int) and isinstance(p, Float):
        raise ZooError(f"{name!r} is a whole number: give an int range (e.g. {int(p.min)}..{int(p.max)})")
    elif isinstance(default, float) and isinstance(p, Int):  # 0..1 for a float means a float range
        return Float(float(p.min), float(p.max), sampling=p.sampling, step=float(p.step) if p.step != 1 else None)
    return p
