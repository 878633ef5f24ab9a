"""The plugin contract: model specs, data specs and search-space declarations.

This module imports no TensorFlow: specs are declarative and are loaded when the
registry lists or filters models. A plugin imports Keras inside its `build`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from zoo.errors import ZooError, did_you_mean

#: The spec API version this core implements; plugins declare the one they target.
SPEC_API_VERSION = 1
SUPPORTED_API_VERSIONS = frozenset({1})

TASKS = ("classification", "regression", "reconstruction", "features", "sequence", "generation")
#: tasks learned from the inputs alone, so any dataset serves: "reconstruction"
#: outputs the input again (autoencoders), "features" a representation (RBMs)
UNSUPERVISED_TASKS = ("reconstruction", "features")

#: capabilities the core gives every spec of a task, without the plugin declaring them:
#: any classifier can be trained adversarially (zoo.adversarial wraps its train_step)
IMPLIED_CAPABILITIES: Mapping[str, frozenset[str]] = MappingProxyType({"classification": frozenset({"adversarial"})})

#: Hyperparameters every model has: how it is compiled and fitted. A spec's own
#: defaults may override them (e.g. SGD for a family whose paper used it).
TRAINING_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "optimizer": "adam",  # sgd, momentum, nesterov, adagrad, rmsprop, adadelta, adam
        "learning_rate": "auto",  # a number, or auto: the optimizer's own default (zoo.training.DEFAULT_LEARNING_RATES)
        "lr_schedule": "constant",  # or "linear": decays to final_lr_fraction * lr; "step": see lr_boundaries
        "final_lr_fraction": 0.01,
        "lr_boundaries": [],  # step schedule: the epochs after which the rate changes ...
        "lr_factors": [],  # ... and the base rate's multiplier before the first and after each boundary
        "loss": "auto",  # auto, crossentropy, hinge, mse, mae, huber
        "batch_size": 32,
        "epochs": 20,
        "patience": 10,  # early stopping on val_loss; 0 turns it off
    }
)


# --- search-space declarations -------------------------------------------------
# Each mirrors a keras_tuner.HyperParameters method; `declare` calls it by duck
# typing so this module never imports keras_tuner. `when` makes a range
# conditional (Keras-Tuner's conditional scopes): {"activation": ("maxout",)}
# searches it only in trials whose activation is maxout.


def _conditions(when: Mapping[str, Any] | None) -> tuple[tuple[str, tuple], ...]:
    """`when` as ((parent, (values...)), ...), sorted; a single value becomes a 1-tuple."""
    out = []
    for parent, values in dict(when or {}).items():
        values = tuple(values) if isinstance(values, (list, tuple, set, frozenset)) else (values,)
        if not values:
            raise ZooError(f"condition on {parent!r} names no values")
        out.append((str(parent), values))
    return tuple(sorted(out))


def _when_text(when: tuple) -> str:
    return "".join(f" when {p} in {{{', '.join(map(str, v))}}}" for p, v in when)


@dataclass(frozen=True)
class Int:
    min: int
    max: int
    step: int = 1
    sampling: str = "linear"
    when: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "when", _conditions(self.when))

    def declare(self, hp: Any, name: str, default: Any) -> Any:
        # keras_tuner wants step None (not 1) with log sampling: there a step is a factor
        step = None if self.sampling == "log" and self.step == 1 else self.step
        return hp.Int(name, self.min, self.max, step=step, sampling=self.sampling, default=default)

    def describe(self) -> str:
        step = f" step {self.step}" if self.step != 1 else ""
        return f"int {self.min}..{self.max}{step}" + (" (log)" if self.sampling == "log" else "") + _when_text(self.when)


@dataclass(frozen=True)
class Float:
    min: float
    max: float
    sampling: str = "linear"
    step: float | None = None
    when: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "when", _conditions(self.when))

    def declare(self, hp: Any, name: str, default: Any) -> Any:
        return hp.Float(name, self.min, self.max, step=self.step, sampling=self.sampling, default=default)

    def describe(self) -> str:
        step = f" step {self.step:g}" if self.step else ""
        return (f"float {self.min:g}..{self.max:g}{step}" + (" (log)" if self.sampling == "log" else "")
                + _when_text(self.when))


@dataclass(frozen=True)
class Choice:
    values: tuple
    when: Any = None

    def __init__(self, *values: Any, when: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "values", tuple(values))
        object.__setattr__(self, "when", _conditions(when))

    def declare(self, hp: Any, name: str, default: Any) -> Any:
        return hp.Choice(name, list(self.values), default=default)

    def describe(self) -> str:
        return "one of " + ", ".join(map(str, self.values)) + _when_text(self.when)


@dataclass(frozen=True)
class Boolean:
    when: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "when", _conditions(self.when))

    def declare(self, hp: Any, name: str, default: Any) -> Any:
        return hp.Boolean(name, default=bool(default))

    def describe(self) -> str:
        return "true or false" + _when_text(self.when)


@dataclass(frozen=True)
class PerLayer:
    """One width per layer, tied to the depth: searching `widths` with
    `PerLayer(Int(16, 256, step=16))` declares `widths_1` ... `widths_D` (D the
    deepest `depth` searched), `widths_i` active only in trials whose depth is at
    least i (Keras-Tuner's canonical conditional pattern). A trial's `widths` is
    the list of its active widths. `replaces` names the hyperparameters that
    `widths` overrides (a uniform `units`): naming one of them in a sweep drops
    this range."""

    width: Int | Choice
    depth: str = "depth"
    replaces: tuple[str, ...] = ("units",)
    when: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.width, (Int, Choice)):
            raise ZooError("PerLayer takes an Int range or a Choice of widths")
        object.__setattr__(self, "replaces", tuple(self.replaces))
        object.__setattr__(self, "when", _conditions(self.when))

    def describe(self) -> str:
        return f"one width per layer ({self.depth} of them), each {self.width.describe()}" + _when_text(self.when)


Param = Int | Float | Choice | Boolean | PerLayer


# --- declaring a space into Keras-Tuner (duck-typed: no keras_tuner import here) ------------


def layer_counts(p: PerLayer, params: Mapping[str, Param], fixed: Mapping[str, Any]) -> list[int]:
    """The depths a per-layer range meets: its depth range's values, or the fixed depth."""
    depth = params.get(p.depth)
    if depth is None:
        return [int(fixed[p.depth])]
    if isinstance(depth, Choice):
        return sorted(int(v) for v in depth.values)
    return list(range(int(depth.min), int(depth.max) + 1, int(depth.step or 1)))


def list_text(values: Any) -> str:
    """A list of numbers as a choice value Keras-Tuner accepts: [64, 32] -> "64-32"."""
    return "-".join(str(v) for v in values)


def _is_list_choice(p: Param) -> bool:
    return isinstance(p, Choice) and any(isinstance(v, tuple) for v in p.values)


def parents_first(params: Mapping[str, Param]) -> dict[str, Param]:
    """`params` ordered so that a range comes after the ranges it depends on
    (its `when` parents, a per-layer range's depth); a cycle is an error."""
    out: dict[str, Param] = {}

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in out:
            return
        if name in trail:
            raise ZooError(f"search conditions form a cycle: {' -> '.join((*trail, name))}")
        p = params[name]
        parents = [w for w, _ in p.when] + ([p.depth] if isinstance(p, PerLayer) else [])
        for parent in parents:
            if parent in params:
                visit(parent, (*trail, name))
        out[name] = p

    for name in params:
        visit(name, ())
    return out


def declare_space(params: Mapping[str, Param], fixed: Mapping[str, Any], hp: Any) -> None:
    """Declare `params` on a keras_tuner.HyperParameters `hp`, parents first: a
    conditional range in conditional scopes, a per-layer range as NAME_1 ...
    NAME_D (NAME_i only in trials whose depth is at least i), a choice of lists as
    a choice of their texts. `fixed` gives defaults and fixed depths."""
    for name, param in parents_first(params).items():
        scopes = list(param.when)
        if isinstance(param, PerLayer):
            depths = layer_counts(param, params, fixed)
            for i in range(1, max(depths) + 1):
                deeper = tuple(d for d in depths if d >= i)
                conditional = param.depth in params and len(deeper) < len(depths)
                _declare_in(hp, scopes + ([(param.depth, deeper)] if conditional else []), param.width,
                            f"{name}_{i}", None)
            continue
        default = fixed.get(name)
        if _is_list_choice(param):
            param = Choice(*map(list_text, param.values))
            default = list_text(default) if default else None
        _declare_in(hp, scopes, param, name, default if _fits(param, default) else None)


def _declare_in(hp: Any, scopes: list, param: Param, name: str, default: Any) -> None:
    if not scopes:
        param.declare(hp, name, default)
        return
    parent, values = scopes[0]
    with hp.conditional_scope(parent, list(values)):
        _declare_in(hp, scopes[1:], param, name, default)


def _fits(param: Any, default: Any) -> bool:
    """Whether a default is a legal default for the declared range."""
    if default is None:
        return False
    if isinstance(param, Choice):
        return default in param.values
    if hasattr(param, "min"):
        try:
            return param.min <= default <= param.max
        except TypeError:
            return False
    return isinstance(default, bool)


def space_values(params: Mapping[str, Param], fixed: Mapping[str, Any], active: Mapping[str, Any]) -> dict[str, Any]:
    """Every hyperparameter a trial trains with: `fixed`, then the searched values
    in `active` (Keras-Tuner's values of a trial), with a per-layer range's
    NAME_1 ... NAME_depth assembled into a list and a choice of lists decoded."""
    values = dict(fixed)
    for name, param in params.items():
        if isinstance(param, PerLayer):
            depth = int(active.get(param.depth, values[param.depth]))
            layers = [active.get(f"{name}_{i}") for i in range(1, depth + 1)]
            if all(w is not None for w in layers):
                values[name] = [int(w) for w in layers]
        elif name in active:
            values[name] = ([json.loads(v) for v in str(active[name]).split("-")] if _is_list_choice(param)
                            else active[name])
    return values


# --- data spec -----------------------------------------------------------------


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about a dataset to build itself.

    `input_shape` is one example's shape, after the dataset's preprocessing;
    `preprocessing` says how raw inputs were transformed (so export can serve raw
    inputs); `value_range` is the range of preprocessed inputs when bounded.
    """

    name: str
    task: str
    input_shape: tuple[int, ...]
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    num_targets: int | None = None
    input_kind: str = "tabular"  # tabular, image, sequence, text
    preprocessing: Mapping[str, Any] = field(default_factory=dict)
    value_range: tuple[float, float] | None = None
    sizes: Mapping[str, int] = field(default_factory=dict)

    @property
    def output_units(self) -> int:
        """Units of the output layer: 1 for binary classification (sigmoid)."""
        if self.task == "classification":
            return 1 if self.num_classes == 2 else int(self.num_classes or 0)
        return int(self.num_targets or math.prod(self.input_shape))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names) if self.class_names else None,
            "num_targets": self.num_targets,
            "input_kind": self.input_kind,
            "preprocessing": dict(self.preprocessing),
            "value_range": list(self.value_range) if self.value_range else None,
            "sizes": dict(self.sizes),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "DataSpec":
        return cls(
            name=d["name"],
            task=d["task"],
            input_shape=tuple(d["input_shape"]),
            num_classes=d.get("num_classes"),
            class_names=tuple(d["class_names"]) if d.get("class_names") else None,
            num_targets=d.get("num_targets"),
            input_kind=d.get("input_kind", "tabular"),
            preprocessing=d.get("preprocessing") or {},
            value_range=tuple(d["value_range"]) if d.get("value_range") else None,
            sizes=d.get("sizes") or {},
        )


# --- weight presets and training recipes ------------------------------------------
# Data, not code: the core resolves them (zoo.presets, zoo.recipes, zoo.reproduce).


@dataclass(frozen=True)
class Figure:
    """A figure a preset or a recipe reaches: `metric` names a key of a run's
    metrics.json (or of its "robustness"), or a figure derived from one
    (zoo.reproduce.FIGURES: test_error is 1 - test_accuracy in %, ...); `value`
    is in that metric's units; `source` says who measured it and where."""

    metric: str
    value: float
    source: str = ""
    dataset: str = ""
    #: for robustness figures: the attack to evaluate the trained model with
    #: (zoo.adversarial.AttackConfig fields: attack, eps, steps, step_size)
    attack: Mapping[str, Any] | None = None
    #: a bound the model cannot pass (the perceptron's XOR), not a result to reach
    limit: bool = False

    def __post_init__(self) -> None:
        if self.attack is not None:
            object.__setattr__(self, "attack", MappingProxyType(dict(self.attack)))

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": self.value, "source": self.source, "dataset": self.dataset,
                **({"attack": dict(self.attack)} if self.attack else {}), **({"limit": True} if self.limit else {})}


@dataclass(frozen=True)
class WeightPreset:
    """Named trained weights for a spec, loaded by `build(..., weights=NAME)` and
    `zoo train --weights NAME`.

    `source` is where the file is: an https:// URL (downloaded with
    keras.utils.get_file into the data directory's cache), `package:MODULE/PATH`
    (a file shipped in a Python package) or a run directory. `sha256` (or `md5`,
    for files whose publisher gives only that, as keras.applications does) is
    checked before the weights are used. `hyperparameters` force the layout the
    weights need (e.g. conv_bias=True); `data` is the DataSpec (JSON) they were
    trained on: input shape, class names and the data-side preprocessing, which
    export and serving apply to raw inputs. Preprocessing inside the network
    (keras.applications' caffe mode) is a hyperparameter of the input block.
    `classifier` is the file's name for the output layer."""

    name: str
    source: str
    data: Mapping[str, Any]
    sha256: str = ""
    md5: str = ""
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    classifier: str = "output"
    license: str = ""
    figure: Figure | None = None
    summary: str = ""
    #: for a figure measured here: train() options that rebuild its test split (split, seed)
    evaluation: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("data", "hyperparameters", "evaluation"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    @property
    def file_hash(self) -> tuple[str, str]:
        """(algorithm, hex digest) that the file must have; ("", "") for a run directory."""
        return ("sha256", self.sha256) if self.sha256 else ("md5", self.md5) if self.md5 else ("", "")

    def problems(self) -> list[str]:
        out = []
        if not _PRESET.match(self.name):
            out.append(f"preset name {self.name!r} must be lowercase letters, digits, '_' or '-'")
        remote = self.source.startswith(("https://", "http://", "file://", "package:"))
        if remote and not (self.sha256 or self.md5):
            out.append(f"preset {self.name!r} needs the sha256 of {self.source}")
        if not {"input_shape", "task"} <= set(self.data):
            out.append(f"preset {self.name!r}: data must give at least input_shape and task")
        return out

    def describe(self) -> dict[str, Any]:
        algorithm, digest = self.file_hash
        return {"name": self.name, "summary": self.summary, "source": self.source,
                "hash": f"{algorithm}:{digest}" if digest else None, "license": self.license,
                "classifier": self.classifier, "hyperparameters": dict(self.hyperparameters),
                "input_shape": list(self.data["input_shape"]),
                "classes": len(self.data.get("class_names") or []) or None,
                "preprocessing": dict(self.data.get("preprocessing") or {}),
                "figure": self.figure.to_json() if self.figure else None}


@dataclass(frozen=True)
class Recipe:
    """A named training recipe: the hyperparameters over the spec's defaults (optimizer,
    schedule, init, input scaling, epochs, ...), the augmentation and adversarial
    training it uses, the paper's dataset and figure, and budgets for `zoo reproduce`
    (`quick` and `paper`: train() options and hyperparameters such as epochs and
    limit). `notes` say where Keras lacks the paper's exact method and what stands in."""

    name: str
    summary: str
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    augment: tuple[str, ...] = ()
    adversarial: Mapping[str, Any] | None = None
    figure: Figure | None = None
    budgets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    notes: str = ""
    reference: str = ""
    #: examples of the training data kept for validation (0: the zoo's split); the papers
    #: trained on all of it, so a recipe may keep only a few for its learning curves
    validation: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "hyperparameters", MappingProxyType(dict(self.hyperparameters)))
        object.__setattr__(self, "augment", tuple(self.augment))
        object.__setattr__(self, "budgets", MappingProxyType({k: MappingProxyType(dict(v))
                                                              for k, v in dict(self.budgets).items()}))
        if self.adversarial is not None:
            object.__setattr__(self, "adversarial", MappingProxyType(dict(self.adversarial)))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "summary": self.summary, "hyperparameters": dict(self.hyperparameters),
                "dataset": self.dataset, "augment": list(self.augment),
                "adversarial": dict(self.adversarial) if self.adversarial else None,
                "figure": self.figure.to_json() if self.figure else None,
                "budgets": {k: dict(v) for k, v in self.budgets.items()}, "notes": self.notes,
                "reference": self.reference, "validation": self.validation}


_PRESET = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


# --- model spec ----------------------------------------------------------------

_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")


@dataclass(frozen=True)
class ModelSpec:
    """A declarative description of one model family variant.

    `build(hp, data_spec)` returns an uncompiled keras.Model whose output suits
    `data_spec` (see zoo.layers.output_head); `hp` is a dict holding every key of
    `hyperparameters()` resolved. Training (compile, fit) is the core's job.
    """

    name: str
    family: str
    summary: str
    tasks: tuple[str, ...]
    build: Callable[[Mapping[str, Any], DataSpec], Any]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    search_space: Mapping[str, Param] = field(default_factory=dict)
    input_ranks: tuple[int, ...] | None = None  # accepted ranks of one example; None: any
    capabilities: frozenset[str] = frozenset()
    default_dataset: str | None = None
    reference: str = ""
    #: optional: pretrain(model, dataset, hp, run_dir) before fit (e.g. greedy RBM)
    pretrain: Callable[..., Any] | None = None
    #: optional: compile_args(hp, data_spec) -> dict overriding loss/metrics
    compile_args: Callable[..., Mapping[str, Any]] | None = None
    api_version: int = SPEC_API_VERSION
    #: optional: modules holding Keras classes a saved model needs, imported before loading
    #: (lets a spec module keep Keras out of its own imports)
    keras_modules: tuple[str, ...] = ()
    #: the model trains with its own keras.Model.train_step (mixup, CD-k, ...): the core
    #: then gives it no implied capability that would replace that step (adversarial
    #: training), unless the spec declares the capability itself (its step composes)
    own_train_step: bool = False
    #: optional: a small input shape (one example) for conformance tests and smoke
    #: runs, for models whose default input is large or unusual (e.g. 224x224x3)
    example_input_shape: tuple[int, ...] | None = None
    #: optional: hyperparameter overrides that make the model small for those tests
    #: (e.g. {"units": 8}); the defaults stay what the paper used
    example_hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    #: optional: named trained weights (zoo.presets), e.g. {"imagenet": WeightPreset(...)}
    presets: Mapping[str, WeightPreset] = field(default_factory=dict)
    #: optional: named training recipes beside the defaults (zoo.recipes), e.g. {"paper": Recipe(...)}
    recipes: Mapping[str, Recipe] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "presets", MappingProxyType(dict(self.presets)))
        object.__setattr__(self, "recipes", MappingProxyType(dict(self.recipes)))
        object.__setattr__(self, "tasks", tuple(self.tasks))
        if self.example_input_shape is not None:
            object.__setattr__(self, "example_input_shape", tuple(self.example_input_shape))
        object.__setattr__(self, "example_hyperparameters", MappingProxyType(dict(self.example_hyperparameters)))
        object.__setattr__(self, "capabilities", frozenset(self.capabilities))
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        object.__setattr__(self, "search_space", MappingProxyType(dict(self.search_space)))
        problems = self.problems()
        if problems:
            exc = PluginSpecInvalid(f"model spec {self.name!r} is invalid: " + "; ".join(problems))
            exc.api_version = self.api_version  # lets the registry say what to upgrade
            raise exc

    def problems(self) -> list[str]:
        """What is wrong with this spec, as sentences (empty when valid)."""
        out = []
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            out.append("name must be lowercase letters, digits, '_', '-' or '.'")
        if not self.tasks:
            out.append("tasks must name at least one task")
        if not callable(self.build):
            out.append("build must be callable")
        if self.api_version not in SUPPORTED_API_VERSIONS:
            out.append(
                f"written for spec API version {self.api_version}; this zoo supports "
                f"{sorted(SUPPORTED_API_VERSIONS)}"
            )
        missing = [k for k in self.search_space if k not in self.hyperparameters()]
        if missing:
            out.append(f"search space names {missing} without defaults")
        for key, param in self.search_space.items():
            parents = [p for p, _ in getattr(param, "when", ())]
            if isinstance(param, PerLayer):
                parents.append(param.depth)
                if not isinstance(self.hyperparameters().get(key), list):
                    out.append(f"PerLayer range {key!r} needs a list default (e.g. [])")
            unknown_parents = [p for p in parents if p not in self.hyperparameters()]
            if unknown_parents:
                out.append(f"search range {key!r} depends on {unknown_parents}, which are not hyperparameters")
        unknown = [k for k in self.example_hyperparameters if k not in self.hyperparameters()]
        if unknown:
            out.append(f"example_hyperparameters names {unknown}, which are not hyperparameters")
        shape = self.example_input_shape
        if shape is not None and (not all(isinstance(d, int) and d > 0 for d in shape)
                                  or (self.input_ranks is not None and len(shape) not in self.input_ranks)):
            out.append(f"example_input_shape {shape} must be positive ints of a rank in input_ranks {self.input_ranks}")
        out += self._preset_and_recipe_problems()
        return out

    def _preset_and_recipe_problems(self) -> list[str]:
        out = []
        known = self.hyperparameters()
        for key, preset in self.presets.items():
            if not isinstance(preset, WeightPreset) or preset.name != key:
                out.append(f"presets[{key!r}] must be a WeightPreset named {key!r}")
                continue
            out += preset.problems()
            unknown = sorted(set(preset.hyperparameters) - set(known))
            if unknown:
                out.append(f"preset {key!r} sets {unknown}, which are not hyperparameters")
        for key, recipe in self.recipes.items():
            if not isinstance(recipe, Recipe) or recipe.name != key:
                out.append(f"recipes[{key!r}] must be a Recipe named {key!r}")
                continue
            budgets = [b for budget in recipe.budgets.values() for b in budget]
            unknown = sorted({*recipe.hyperparameters, *budgets} - set(known) - set(RECIPE_OPTIONS))
            if unknown:
                out.append(f"recipe {key!r} sets {unknown}, which are not hyperparameters")
        if "default" in self.recipes:
            out.append("the recipe name 'default' is taken: it means the spec's defaults")
        return out

    @property
    def all_capabilities(self) -> frozenset[str]:
        """The declared capabilities plus those the core gives its tasks
        (IMPLIED_CAPABILITIES); none implied for a model with its own train_step,
        which those capabilities would replace."""
        if self.own_train_step:
            return self.capabilities
        return self.capabilities.union(*(IMPLIED_CAPABILITIES.get(t, ()) for t in self.tasks))

    def hyperparameters(self) -> dict[str, Any]:
        """Every hyperparameter with its default: training ones, then the family's."""
        return {**TRAINING_DEFAULTS, **self.defaults}

    def resolve(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults with `overrides` applied; strings (from the CLI) are parsed by
        the default's type. Unknown names are a ZooError with a suggestion."""
        hp = self.hyperparameters()
        for key, value in (overrides or {}).items():
            if key not in hp:
                raise ZooError(
                    f"model {self.name!r} has no hyperparameter {key!r}."
                    + did_you_mean(key, hp)
                    + f" Known: {', '.join(sorted(hp))}."
                )
            hp[key] = coerce(key, value, hp[key])
        return hp

    def check_data(self, data_spec: DataSpec) -> None:
        """Raise a ZooError when this model cannot take `data_spec`'s examples."""
        if data_spec.task not in self.tasks and not set(self.tasks) & set(UNSUPERVISED_TASKS):
            raise ZooError(
                f"model {self.name!r} does {', '.join(self.tasks)}; dataset "
                f"{data_spec.name!r} is a {data_spec.task} dataset."
            )
        rank = len(data_spec.input_shape)
        if self.input_ranks is not None and rank not in self.input_ranks:
            raise ZooError(
                f"model {self.name!r} takes examples of rank {self.input_ranks}; dataset "
                f"{data_spec.name!r} has examples of shape {data_spec.input_shape}."
            )

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary for `zoo info` and metadata files."""
        return {
            "name": self.name,
            "family": self.family,
            "summary": self.summary,
            "tasks": list(self.tasks),
            "input_ranks": list(self.input_ranks) if self.input_ranks else "any",
            "capabilities": sorted(self.all_capabilities),
            "default_dataset": self.default_dataset,
            "reference": self.reference,
            "api_version": self.api_version,
            "defaults": self.hyperparameters(),
            "search_space": {k: p.describe() for k, p in self.search_space.items()},
            "presets": {k: p.describe() for k, p in self.presets.items()},
            "recipes": {k: r.describe() for k, r in self.recipes.items()},
        }


#: train() options a recipe's budget may set beside hyperparameters
RECIPE_OPTIONS = ("limit", "split")


class PluginSpecInvalid(ZooError):
    """A ModelSpec constructed with invalid fields."""


# --- the other plugin kinds: datasets and commands -------------------------------------------


@dataclass(frozen=True)
class DatasetSource:
    """A dataset plugin (entry-point group `zoo.datasets`): a name, or a URI scheme
    when `scheme` is true (`NAME:REST`, like the built-in csv: and npz:).

    `read(**options)` (or `read(rest, **options)` for a scheme) returns a
    zoo.data.Raw: the examples as arrays (x, y), the task, the input kind
    (tabular, image, sequence, text), class names, an official test split if
    there is one. The core splits, preprocesses and describes them (DataSpec),
    as for every built-in dataset. `options` are the data options the caller
    gave (target, task, image_size, ...); take the ones you know with **kwargs."""

    name: str
    summary: str
    read: Callable[..., Any]
    task: str = "classification"  # what its examples are for, shown by `zoo datasets`
    scheme: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise PluginSpecInvalid(f"dataset name {self.name!r} must be lowercase letters, digits, '_', '-' or '.'")
        if not callable(self.read):
            raise PluginSpecInvalid(f"dataset {self.name!r}: read must be callable")


@dataclass(frozen=True)
class Command:
    """A `zoo` sub-command (entry-point group `zoo.commands`): `add_arguments(parser)`
    declares its arguments on an argparse parser, `run(args)` does the work and
    returns an exit status (None is 0); the first line of `help` is its summary
    in `zoo --help`. A ZooError raised by `run` prints as one line, exit 2."""

    name: str
    add_arguments: Callable[[Any], None]
    run: Callable[[Any], int | None]
    help: str = ""


#: hyperparameters whose default "auto" stands for a number chosen at training time
NUMBER_OR_AUTO = ("learning_rate",)


def coerce(key: str, value: Any, default: Any) -> Any:
    """Parse a CLI string by the type of the default; check Python values' types."""
    if key in NUMBER_OR_AUTO and value != "auto" and default == "auto":  # a number, from the CLI or Python
        return coerce(key, value, 1.0)
    if not isinstance(value, str) or isinstance(default, str):
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ZooError(f"hyperparameter {key!r} must be true or false, got {value!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ZooError(f"hyperparameter {key!r} must be a number, got {value!r}")
            if isinstance(default, int) and isinstance(value, float) and not value.is_integer():
                raise ZooError(f"hyperparameter {key!r} must be a whole number, got {value!r}")
            return type(default)(value)
        return list(value) if isinstance(value, tuple) else value
    text = value.strip()
    try:
        if isinstance(default, bool):
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, (list, tuple)):
            return [json.loads(v) for v in text.replace(" ", "").split(",") if v]
        if default is None:
            return json.loads(text)
    except ValueError:
        kind = type(default).__name__ if default is not None else "JSON value"
        raise ZooError(f"hyperparameter {key!r} expects a {kind}, got {value!r}") from None
    return text
