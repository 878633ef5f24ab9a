"""Transfer learning: start a run from a previous run's (or a saved model's) layers.

    train("lenet5", "mnist", from_run="runs/lenet5-digits-...", freeze="all-but-head")
    zoo train lenet5 -d mnist --from runs/lenet5-digits-... --freeze 4

The new model is built by its spec for the new data (so the head fits the new
number of classes), then every layer whose name and weight shapes match a layer
of the source model takes the source's weights; the others (the new head) start
fresh; so does the head when the source learned other classes. `freeze` keeps the
first N weight layers, or all but the head, fixed (frozen batch-norm layers also
keep their statistics).

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
    """A model to start from, with the run configuration when it came from a run."""

    path: Path
    model: Any
    config: dict[str, Any] | None = None

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return dict((self.config or {}).get("hyperparameters", {}))


@dataclass
class Transfer:
    """What was reused and frozen, for the run's config.json."""

    source: str
    freeze: str | int | None
    copied: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"from": self.source, "freeze": self.freeze, "copied": self.copied, "fresh": self.fresh,
                "frozen": self.frozen}


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
    if config is not None and config.get("model"):
        from zoo.registry import get_spec

        try:
            get_spec(config["model"])  # import the plugin so its custom layers are registered
        except ZooError:
            pass
    try:
        model = keras.saving.load_model(file, compile=False)
    except Exception as exc:
        raise ZooError(f"cannot load {str(file)!r} to start from: {type(exc).__name__}: {exc}") from None
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
    channels so its first convolution can be reused."""
    from zoo.spec import TRAINING_DEFAULTS
    from zoo.training import learning_rate, resolve_hyperparameters

    known = spec.hyperparameters()
    inherited = {k: v for k, v in source.hyperparameters.items() if k in known and k not in TRAINING_DEFAULTS}
    hp = resolve_hyperparameters(spec, {**inherited, **dict(overrides)})
    if "learning_rate" not in overrides and parse_freeze(freeze) not in ("all-but-head", "all"):
        hp["learning_rate"] = learning_rate(hp) * FINE_TUNE_LR_FACTOR
    channels = first_conv_channels(source.model)
    if "channels" in hp and not hp["channels"] and "channels" not in overrides and channels in (1, 3):
        hp["channels"] = channels
    return hp


def first_conv_channels(model) -> int | None:
    """Input channels of the first trainable 2-D convolution (None if there is none)."""
    for layer in _weight_layers(model):
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


def same_classes(source: Source, data_spec: DataSpec | None) -> bool:
    """Whether the source run learned the same classes of the same dataset (then its
    head is worth keeping); unknown (a bare .keras file) counts as the same."""
    if source.config is None or data_spec is None or "data_spec" not in source.config:
        return True
    before = DataSpec.from_json(source.config["data_spec"])
    return before.name == data_spec.name and before.class_names == data_spec.class_names


def apply(model, source: Source, freeze: str | int | None, data_spec: DataSpec | None = None,
          new_head: bool | None = None) -> Transfer:
    """Copy the source's weights into `model` layer by layer (by name and shapes),
    then freeze as asked. The head starts fresh when `new_head`, by default when
    the classes differ from the source run's (another dataset) or do not fit.
    Raises when nothing could be reused."""
    freeze = parse_freeze(freeze)
    if new_head is None:
        new_head = not same_classes(source, data_spec)
    by_name = {layer.name: layer for layer in _weight_layers(source.model)
               if not (new_head and layer.name.startswith(HEAD_PREFIX))}
    info = Transfer(str(source.path), freeze)
    layers = _weight_layers(model)
    for layer in layers:
        src = by_name.get(layer.name)
        if src is not None and [tuple(w.shape) for w in src.weights] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(src.get_weights())
            info.copied.append(layer.name)
        else:
            info.fresh.append(layer.name)
    if not info.copied:
        raise ZooError(f"no layer of {str(source.path)!r} fits model {model.name!r} (no layer with the same name "
                       "and weight shapes); start from a run of the same family")
    learning = [layer for layer in layers if layer.trainable_weights]  # fixed layers (input adapters) don't count
    if freeze == "all-but-head" or freeze == "all":
        targets = [layer for layer in learning if freeze == "all" or not layer.name.startswith(HEAD_PREFIX)]
    elif isinstance(freeze, int):
        if freeze > len(learning):
            raise ZooError(f"freeze {freeze}: model {model.name!r} has only {len(learning)} layers with trainable "
                           "weights")
        targets = learning[:freeze]
    else:
        targets = []
    for layer in targets:
        layer.trainable = False
        info.frozen.append(layer.name)
    return info
