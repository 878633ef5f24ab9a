"""Transfer learning: start a run from a previous run's (or a saved model's) layers.

    train("lenet5", "mnist", from_run="runs/lenet5-digits-...", freeze="all-but-head")
    zoo train lenet5 -d mnist --from runs/lenet5-digits-... --freeze 4

The new model is built by its spec for the new data (so the head fits the new
number of classes), then every layer whose name and weight shapes match a layer
of the source model takes the source's weights; the others (the new head) start
fresh; so does the head when the source learned other classes. `freeze` keeps the
first N weight layers, or all but the head, fixed (frozen batch-norm layers also
keep their statistics).

Weights can also come from a file (zoo.presets: a preset, keras.applications' .h5,
a Keras .weights.h5). Every transfer reports which of the model's weight layers were
loaded, skipped (no layer of that name and shapes in the source) and replaced (a new
head); loading fewer than half of them is an error naming what did not fit, unless
`partial` says it is meant: a model left mostly random must not pass for a
pretrained one.

The source's architecture hyperparameters (depth, widths, ...) are the starting
point and the caller's override them; its training ones (epochs, optimizer,
learning rate, batch size, patience) are not inherited: the new run trains with
the target family's defaults, as any run does. Unless a learning rate is given,
training only the head (freeze all-but-head or all) uses the optimizer's default
rate, and fine-tuning more layers a tenth of it (FINE_TUNE_LR_FACTOR), as the
Keras transfer-learning guide does for its second phase.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.spec import DataSpec, ModelSpec

#: fine-tuning learning rate = the optimizer's default rate x this, unless given
FINE_TUNE_LR_FACTOR = 0.1
#: layers named so are the head ("all-but-head" leaves them trainable)
HEAD_PREFIX = "output"


@dataclass
class Source:
    """Weights to start from: a Keras model (a run's or a .keras file's), or arrays by
    layer name read from a weights file; with the run configuration when it came from
    a run, and the preset when it is one."""

    path: Path
    model: Any = None
    config: dict[str, Any] | None = None
    #: layer name -> weight arrays (get_weights() order), when there is no model
    arrays: dict[str, list] | None = None
    #: the source's name for its classifier (keras.applications: "predictions"); None: its output layer
    classifier: str | None = None
    #: {"name": "MODEL.PRESET", "sha256" or "md5": ...} when the weights are a preset's
    preset: dict[str, Any] | None = None
    #: hyperparameters the weights need (a preset's layout), which the caller may not change
    forced: dict[str, Any] = field(default_factory=dict)

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return {**dict((self.config or {}).get("hyperparameters", {})), **self.forced}

    def layer_weights(self) -> dict[str, list]:
        """Weight arrays by layer name, the classifier named as the zoo names it (HEAD_PREFIX)."""
        found = dict(self.arrays) if self.arrays is not None else {
            layer.name: layer.get_weights() for layer in _weight_layers(self.model)}
        head = self.classifier or (None if self.model is None else _output_layer(self.model))
        if head and head in found and not any(n.startswith(HEAD_PREFIX) for n in found):
            found[HEAD_PREFIX] = found.pop(head)
        return found


@dataclass
class Transfer:
    """What was loaded, skipped, replaced and frozen, for the run's config.json."""

    source: str
    freeze: str | int | None
    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)
    preset: dict[str, Any] | None = None
    #: why each skipped layer was skipped
    reasons: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"from": self.source, "freeze": self.freeze, "loaded": self.loaded, "skipped": self.skipped,
                "replaced": self.replaced, "frozen": self.frozen, "reasons": self.reasons,
                **({"preset": self.preset} if self.preset else {})}

    def summary(self) -> str:
        """One line: how many of the model's weight layers were loaded, skipped, replaced."""
        total = len(self.loaded) + len(self.skipped) + len(self.replaced)
        return (f"weights from {self.source}: {len(self.loaded)} of {total} weight layers loaded, "
                f"{len(self.skipped)} skipped" + (f" ({', '.join(self.skipped[:3])}"
                                                  + (", ..." if len(self.skipped) > 3 else "") + ")"
                                                  if self.skipped else "")
                + f", {len(self.replaced)} replaced" + (f" ({', '.join(self.replaced)})" if self.replaced else "")
                + (f"; {len(self.frozen)} frozen" if self.frozen else ""))


def load_source(path: str | Path) -> Source:
    """A run directory (config.json + model.keras), a .keras file, or a folder
    holding one .keras file (e.g. an export's assets)."""
    import json

    import keras

    p = Path(path).expanduser()
    if not p.exists():
        raise ZooError(f"cannot start from {str(p)!r}: it does not exist (give a run directory or a .keras file)")
    config = None
    if p.is_dir():
        if (p / "config.json").is_file():
            try:
                config = json.loads((p / "config.json").read_text())
            except json.JSONDecodeError as exc:
                raise ZooError(f"run directory {str(p)!r} has a corrupt config.json: {exc}") from None
        candidates = [p / "model.keras"] if (p / "model.keras").is_file() else sorted(p.rglob("*.keras"))
        candidates = [c for c in candidates if c.name != "checkpoint.keras"] or candidates
        if len(candidates) != 1:
            raise ZooError(f"{str(p)!r} holds {'no' if not candidates else 'several'} .keras models; give a run "
                           "directory of a finished run or one .keras file (a SavedModel alone has no layers to reuse)")
        file = candidates[0]
    else:
        file = p
    from zoo.training import load_keras_model

    model = load_keras_model(file, model_name=(config or {}).get("model"), compile=False)  # keras_modules first
    return Source(p, model, config)


def parse_freeze(freeze: str | int | None) -> str | int | None:
    """None/'none'/0, a number N (the first N layers with trainable weights),
    'all-but-head' or 'all'."""
    if freeze is None or freeze == "" or freeze == "none":
        return None
    if isinstance(freeze, bool):
        raise ZooError("freeze takes a number of layers, 'all-but-head' or 'none'")
    if isinstance(freeze, int) or (isinstance(freeze, str) and freeze.strip().isdigit()):
        n = int(freeze)
        if n < 0:
            raise ZooError(f"freeze takes a non-negative number of layers, got {n}")
        return n or None
    value = str(freeze).strip().lower().replace("_", "-")
    if value in ("all-but-head", "all"):
        return value
    raise ZooError(f"freeze takes a number of layers, 'all-but-head' or 'none', got {freeze!r}")


def hyperparameters(spec: ModelSpec, source: Source, overrides: Mapping[str, Any],
                    freeze: str | int | None = None) -> dict[str, Any]:
    """The new run's hyperparameters: the source run's architecture (those the spec
    knows), then the caller's; training hyperparameters are the target's own; the
    learning rate, unless given, is the optimizer's default for training the head
    alone and a tenth of it for fine-tuning; image models keep the source's input
    channels so its first convolution can be reused. A preset's layout (`forced`)
    cannot be overridden."""
    from zoo.spec import TRAINING_DEFAULTS
    from zoo.training import learning_rate, resolve_hyperparameters

    clash = {k: v for k, v in overrides.items() if k in source.forced and source.forced[k] != v}
    if clash:
        name = (source.preset or {}).get("name", str(source.path))
        raise ZooError(f"{name} needs " + ", ".join(f"{k}={source.forced[k]!r}" for k in clash)
                       + f"; drop {', '.join(f'--set {k}=...' for k in clash)} (the weights need that layout)")
    known = spec.hyperparameters()
    inherited = {k: v for k, v in source.hyperparameters.items() if k in known and k not in TRAINING_DEFAULTS}
    hp = resolve_hyperparameters(spec, {**inherited, **dict(overrides)})
    if "learning_rate" not in overrides and parse_freeze(freeze) not in ("all-but-head", "all"):
        hp["learning_rate"] = learning_rate(hp) * FINE_TUNE_LR_FACTOR
    channels = first_conv_channels(source)
    if "channels" in hp and not hp["channels"] and "channels" not in overrides and channels in (1, 3):
        hp["channels"] = channels
    return hp


def first_conv_channels(source: Source) -> int | None:
    """Input channels of the source's first trainable 2-D convolution (None if there is none)."""
    if source.model is None:
        kernels = [w[0] for w in (source.arrays or {}).values() if w and getattr(w[0], "ndim", 0) == 4]
        return int(kernels[0].shape[2]) if kernels else None
    for layer in _weight_layers(source.model):
        kernel = getattr(layer, "kernel", None)
        if layer.trainable and kernel is not None and len(kernel.shape) == 4:
            return int(kernel.shape[2])
    return None


def _weight_layers(model) -> list:
    """Layers that own weights, in order (nested models flattened)."""
    import keras

    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(_weight_layers(layer))
        elif layer.weights:
            out.append(layer)
    return out


def learned_layers(model) -> list:
    """The layers whose weights are learned (fixed input adapters such as a channel
    conversion or a connection table's selection are part of the architecture)."""
    return [layer for layer in _weight_layers(model) if layer.trainable_weights]


def _output_layer(model) -> str | None:
    """The name of the layer that computes a functional model's (first) output."""
    try:
        return model.outputs[0]._keras_history.operation.name
    except (AttributeError, IndexError, TypeError):
        return None


def same_classes(source: Source, data_spec: DataSpec | None) -> bool:
    """Whether the source learned the same classes of the same dataset (then its head
    is worth keeping); unknown (a bare .keras file) counts as the same."""
    config = source.config or {}
    if data_spec is None or "data_spec" not in config:
        return True
    before = DataSpec.from_json(config["data_spec"])
    return before.name == data_spec.name and before.class_names == data_spec.class_names


def apply(model, source: Source, freeze: str | int | None, data_spec: DataSpec | None = None,
          new_head: bool | None = None, partial: bool = False, spec: ModelSpec | None = None) -> Transfer:
    """Copy the source's weights into `model` layer by layer (by name and shapes),
    then freeze as asked. The head starts fresh when `new_head`, by default when the
    classes differ from the source's (another dataset) or do not fit. Loading fewer
    than half of the model's weight layers is a ZooError naming what did not fit
    (with a hint from `spec`), unless `partial`."""
    freeze = parse_freeze(freeze)
    if new_head is None:
        new_head = not same_classes(source, data_spec)
    found = source.layer_weights()
    info = Transfer(str((source.preset or {}).get("name") or source.path), freeze, preset=source.preset)
    layers, more_arrays = learned_layers(model), False
    for layer in layers:
        arrays = found.get(layer.name)
        shapes = [tuple(w.shape) for w in layer.weights]
        fits = arrays is not None and [tuple(a.shape) for a in arrays] == shapes
        if layer.name.startswith(HEAD_PREFIX) and arrays is not None and (new_head or not fits):
            info.replaced.append(layer.name)
        elif fits:
            layer.set_weights(arrays)
            info.loaded.append(layer.name)
        else:
            info.skipped.append(layer.name)
            info.reasons[layer.name] = ("not in the source" if arrays is None else
                                        f"source {[tuple(a.shape) for a in arrays]}, model {shapes}")
            more_arrays = more_arrays or (arrays is not None and len(arrays) > len(shapes))
    if not info.loaded:
        raise ZooError(f"no layer of {info.source} fits model {model.name!r} (no layer with the same name "
                       "and weight shapes); start from a run of the same family" + _hint(more_arrays, spec))
    share = _loaded_share(layers, info)
    if (2 * len(info.loaded) < len(layers) or share < 0.5) and not partial:
        raise ZooError(f"only {len(info.loaded)} of the {len(layers)} weight layers of {model.name!r} ({share:.1%} of "
                       f"the weights to load) fit {info.source}: "
                       + "; ".join(f"{n} ({info.reasons[n]})" for n in info.skipped[:2])
                       + _hint(more_arrays, spec) + ". Pass --partial (partial=True) if starting from part of it is meant")
    _freeze(layers, freeze, info, model.name)
    return info


def _loaded_share(layers: list, info: Transfer) -> float:
    """The share of the weights meant to be loaded (all but a replaced head's) that were."""
    import math

    sizes = {layer.name: sum(math.prod(w.shape) for w in layer.weights) for layer in layers}
    loaded, skipped = sum(sizes[n] for n in info.loaded), sum(sizes[n] for n in info.skipped)
    return loaded / (loaded + skipped) if loaded + skipped else 1.0


def _hint(more_arrays: bool, spec: ModelSpec | None) -> str:
    """What to change when the source's layers hold more arrays than the model's (biases)."""
    if more_arrays and spec is not None and spec.hyperparameters().get("conv_bias") is False:
        return " (the source's convolutions have biases: build with --set conv_bias=true)"
    return ""


def _freeze(layers: list, freeze: str | int | None, info: Transfer, name: str) -> None:
    if freeze == "all-but-head" or freeze == "all":
        targets = [layer for layer in layers if freeze == "all" or not layer.name.startswith(HEAD_PREFIX)]
    elif isinstance(freeze, int):
        if freeze > len(layers):
            raise ZooError(f"freeze {freeze}: model {name!r} has only {len(layers)} layers with trainable weights")
        targets = layers[:freeze]
    else:
        targets = []
    for layer in targets:
        layer.trainable = False
        info.frozen.append(layer.name)
