"""Weight presets: named trained weights a spec declares (zoo.spec.WeightPreset),
fetched, checked and loaded by the core.

    zoo.build("resnet50", weights="imagenet")       keras.applications' file; caffe input block
    zoo train lenet5 -d npz:x.npz --weights mnist --freeze all-but-head
    zoo predict lenet5.mnist --input digit.png      a preset shipped in the package
    zoo list --pretrained

Where the file is: shipped in a Python package (`package:MODULE/PATH`), at a URL
(downloaded once by keras.utils.get_file into DATA_DIR/weights/), or a run directory.
Its SHA-256 (or the MD5 its publisher gives, as keras.applications does) is checked
before use: a file with another hash is refused, never re-fetched silently.
Formats: keras.applications' .h5 (Keras 2 `save_weights`, read by layer name),
Keras's .weights.h5 (loaded by Keras into the architecture the weights were trained
with, then copied by name), .keras archives and run directories.

Listing presets imports no TensorFlow.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from zoo import registry
from zoo.errors import ZooError, did_you_mean
from zoo.spec import DataSpec, ModelSpec, WeightPreset

URL_SCHEMES = ("https://", "http://", "file://")
PACKAGE = "package:"
#: weights file suffixes besides run directories and .keras archives
FILE_SUFFIXES = (".h5", ".hdf5")


# --- names and listing -------------------------------------------------------------------


def split_name(text: str) -> tuple[str, str] | None:
    """("lenet5", "mnist") for "lenet5.mnist" when lenet5 is a registered model (read
    from entry points, nothing imported); None for anything else (e.g. a path)."""
    model, dot, preset = str(text).rpartition(".")
    if not dot or not model or not preset or "/" in str(text) or Path(str(text)).exists():
        return None
    return (model, preset) if model in registry.names() else None


def find(text: str) -> tuple[ModelSpec, WeightPreset]:
    """The spec and preset that "MODEL.PRESET" names."""
    parts = split_name(text)
    if parts is None:
        raise ZooError(f"{text!r} is not a preset name (MODEL.PRESET, e.g. lenet5.mnist); `zoo list --pretrained` "
                       "lists them")
    spec = registry.get_spec(parts[0])
    return spec, get(spec, parts[1])


def get(spec: ModelSpec, name: str) -> WeightPreset:
    """Preset `name` of `spec` (also given as "MODEL.PRESET"), or a ZooError listing its presets."""
    if name.startswith(spec.name + ".") and name[len(spec.name) + 1:] in spec.presets:
        name = name[len(spec.name) + 1:]
    if name in spec.presets:
        return spec.presets[name]
    known = ", ".join(spec.presets) or "none (`zoo list --pretrained` lists every preset)"
    raise ZooError(f"model {spec.name!r} has no weight preset {name!r}." + did_you_mean(name, spec.presets)
                   + f" Its presets: {known}. Or give a weights file (.h5, .weights.h5, .keras) or a run directory.")


def listing(pattern: str | None = None) -> list[tuple[ModelSpec, WeightPreset]]:
    """Every (spec, preset) of the working models matching a glob (imports the specs, not TensorFlow)."""
    specs, _ = registry.load_all(pattern)
    return [(spec, preset) for spec in specs for preset in spec.presets.values()]


def full_name(spec: ModelSpec, preset: WeightPreset) -> str:
    return f"{spec.name}.{preset.name}"


# --- fetching and checking -----------------------------------------------------------------


def cache_dir(data_dir: str | Path | None = None) -> Path:
    """Where downloaded weights and materialised presets live: DATA_DIR/weights, DATA_DIR/presets
    (a temporary folder when the data directory is read-only, as keras.utils.get_file does)."""
    import os
    import tempfile

    from zoo.data.sources import data_dir as root

    folder = root(data_dir)
    if folder.exists() and not os.access(folder, os.W_OK):
        return Path(tempfile.gettempdir()) / "zoo-cache" / folder.name
    return folder


def fetch(spec: ModelSpec, preset: WeightPreset, data_dir: str | Path | None = None) -> Path:
    """The preset's weights on disk, its hash checked (a run directory has none)."""
    source = preset.source
    if source.startswith(PACKAGE):
        path = _package_file(source[len(PACKAGE):], full_name(spec, preset))
    elif source.startswith(URL_SCHEMES):
        path = _download(spec, preset, data_dir)
    else:
        path = Path(source).expanduser()
        if not (path / "model.keras").is_file():
            raise ZooError(f"preset {full_name(spec, preset)}: {source!r} is not a finished run directory")
        return path
    check_hash(path, *preset.file_hash, what=full_name(spec, preset), url=source if "://" in source else None)
    return path


def _package_file(reference: str, what: str) -> Path:
    module, _, relative = reference.partition("/")
    try:
        path = Path(str(importlib.resources.files(module).joinpath(relative)))
    except ModuleNotFoundError:
        raise ZooError(f"preset {what}: package {module!r} is not installed") from None
    if not path.is_file():
        raise ZooError(f"preset {what}: {relative} is missing from the installed package {module}; reinstall it")
    return path


def _download(spec: ModelSpec, preset: WeightPreset, data_dir: str | Path | None) -> Path:
    """keras.utils.get_file into DATA_DIR/weights; offline, one line saying which file to put where."""
    folder = cache_dir(data_dir) / "weights"
    name = preset.source.rstrip("/").rsplit("/", 1)[-1]
    target = folder / name
    algorithm, digest = preset.file_hash
    if target.exists():  # checked by fetch(); get_file would quietly try to download it again
        return target
    import keras

    folder.mkdir(parents=True, exist_ok=True)
    try:
        got = keras.utils.get_file(name, preset.source, file_hash=digest, hash_algorithm=algorithm,
                                   cache_dir=str(folder.parent), cache_subdir=folder.name)
    except ValueError as exc:  # downloaded, but with another hash (get_file removes nothing: we do)
        target.unlink(missing_ok=True)
        raise ZooError(f"refused the download of {full_name(spec, preset)} from {preset.source}: {exc}") from None
    except Exception as exc:  # no network, HTTP error
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ZooError(f"cannot download {full_name(spec, preset)} ({reason}): put {name} from {preset.source} "
                       f"({algorithm} {digest}) at {target}") from None
    return Path(got)


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_hash(path: Path, algorithm: str, expected: str, *, what: str, url: str | None = None) -> None:
    """Refuse a file whose hash is not the one its preset declares."""
    if not expected:
        return
    got = file_digest(path, algorithm)
    if got != expected.lower():
        again = f" and run again to download it from {url}" if url else ""
        raise ZooError(f"refused {path}: its {algorithm} is {got}, but {what} expects {expected} (a damaged or "
                       f"different file); delete it{again}")


# --- reading weights into a transfer.Source -------------------------------------------------


def source(weights: str | Path, spec: ModelSpec, data_dir: str | Path | None = None):
    """A transfer.Source for `weights`: a preset of `spec` ("imagenet" or
    "resnet50.imagenet") or the path of a weights file or run directory. A Keras
    .weights.h5 file is loaded later by `complete`, once the architecture is known."""
    text = str(weights)
    path = Path(text).expanduser()
    if text in spec.presets or (text.startswith(spec.name + ".") and not path.exists()):
        preset = get(spec, text)
        found = _from_file(fetch(spec, preset, data_dir), preset.classifier)
        algorithm, digest = preset.file_hash
        found.preset = {"name": full_name(spec, preset), "source": preset.source,
                        **({algorithm: digest} if digest else {})}
        found.forced = dict(preset.hyperparameters)
        found.config = {"hyperparameters": dict(preset.hyperparameters), "data_spec": _data_json(preset)}
        return found
    if not path.exists():
        if split_name(text):
            raise ZooError(f"{text!r} is a preset of another model; give one of {spec.name!r}'s presets: "
                           + (", ".join(spec.presets) or "it has none"))
        get(spec, text)  # raises: no such preset (with its presets and a suggestion)
    found = _from_file(path, None)
    if path.is_file():
        found.preset = {"file": str(path), "sha256": file_digest(path)}
    return found


def _from_file(path: Path, classifier: str | None):
    """A Source from a run directory, a .keras archive or an .h5 weights file."""
    from zoo import transfer

    if path.is_dir() or path.suffix == ".keras":
        found = transfer.load_source(path)
        found.classifier = classifier or found.classifier
        return found
    if path.suffix not in FILE_SUFFIXES:
        raise ZooError(f"cannot read weights from {str(path)!r}: give a .h5 or .weights.h5 file, a .keras model or a "
                       "run directory")
    import h5py

    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            if "layer_names" in group.attrs:  # Keras 2 format (keras.applications' files)
                return transfer.Source(path, arrays=_legacy_arrays(group), classifier=classifier)
            if "layers" not in f:
                raise ZooError(f"{str(path)!r} is an HDF5 file but not Keras weights (no layers in it)")
    except OSError as exc:
        raise ZooError(f"cannot read {str(path)!r}: {exc}") from None
    return transfer.Source(path, classifier=classifier)  # Keras 3 format: loaded by complete()


def _legacy_arrays(group) -> dict[str, list]:
    """Layer name -> arrays of a Keras 2 weights file, in each layer's saved order
    (trainable, then non-trainable: the order of layer.weights for the zoo's layers)."""
    import numpy as np

    def text(value):
        return value.decode("utf8") if hasattr(value, "decode") else str(value)

    out = {}
    for name in map(text, group.attrs["layer_names"]):
        layer = group[name]
        names = [text(n) for n in layer.attrs.get("weight_names", [])]
        if names:
            out[name] = [np.asarray(layer[n]) for n in names]
    return out


def complete(found, spec: ModelSpec, hp: Mapping[str, Any], data_spec: DataSpec) -> None:
    """Load a Keras .weights.h5 source with Keras's own loader into the architecture the
    weights were trained with: the preset's (its hyperparameters and data), or, for a
    bare file, `hp` on `data_spec` with the file's number of classes."""
    if found.model is not None or found.arrays is not None:
        return
    from zoo.training import build_model

    if found.preset and "name" in found.preset:
        preset = get(spec, found.preset["name"])
        hp, data_spec = spec.resolve(dict(preset.hyperparameters)), DataSpec.from_json(_data_json(preset))
    else:
        data_spec = _with_file_classes(data_spec, found.path)
    model = build_model(spec, hp, data_spec)
    try:
        model.load_weights(found.path)
    except (ValueError, KeyError, TypeError) as exc:
        first = " ".join(str(exc).strip().splitlines()[:2]) or type(exc).__name__
        raise ZooError(f"{found.path} does not fit {spec.name!r} built with these hyperparameters ({first}); a "
                       ".weights.h5 file holds no architecture: build it as it was trained (--set ...), or give "
                       "its .keras model or run directory") from None
    found.model = model


def _with_file_classes(data_spec: DataSpec, path: Path) -> DataSpec:
    """`data_spec` with the number of classes of the file's output layer (its bias's length)."""
    if data_spec.task != "classification":
        return data_spec
    import h5py

    with h5py.File(path, "r") as f:
        for group in f["layers"].values():
            if group.get("vars") is not None and group["vars"].attrs.get("name") == "output" and "1" in group["vars"]:
                units = int(group["vars"]["1"].shape[0])
                classes = 2 if units == 1 else units
                if classes != data_spec.num_classes:
                    return replace(data_spec, num_classes=classes, class_names=None)
    return data_spec


def raw_inputs(found) -> bool:
    """Whether the weights take raw (unscaled) inputs: their data spec has no data-side
    preprocessing, because their input block does it (keras.applications' caffe)."""
    data = (found.config or {}).get("data_spec") or {}
    return bool(found.preset and "name" in found.preset) and (data.get("preprocessing") or {}).get("type") == "none"


def _data_json(preset: WeightPreset) -> dict[str, Any]:
    """The preset's data spec as DataSpec.to_json gives it (name defaults to the preset's)."""
    data = {"name": preset.name, "preprocessing": {"type": "none"}, **dict(preset.data)}
    return json.loads(json.dumps(data))


# --- using a preset without training ---------------------------------------------------------


def build(spec: ModelSpec, weights: str, *, data_spec: DataSpec | None = None, partial: bool = False,
          data_dir: str | Path | None = None, **overrides: Any):
    """`spec` built with `weights` loaded (a preset name or a weights file): for the
    preset's own data unless `data_spec` says otherwise (then a head for other classes
    starts fresh). Raises when fewer than half of the weight layers load, unless `partial`."""
    from zoo import transfer
    from zoo.training import build_model

    found = source(weights, spec, data_dir)
    hp = transfer.hyperparameters(spec, found, overrides)
    trained_on = (found.config or {}).get("data_spec")
    if data_spec is None and trained_on is None:
        raise ZooError(f"{weights} says nothing of its data: give input_shape (and num_classes)")
    data_spec = data_spec or DataSpec.from_json(trained_on)
    complete(found, spec, hp, data_spec)
    model = build_model(spec, hp, data_spec)
    # the head is kept when it has the weights' number of outputs (a file without a data spec: when it fits)
    new_head = trained_on is not None and DataSpec.from_json(trained_on).output_units != data_spec.output_units
    transfer.apply(model, found, None, data_spec, new_head=new_head, partial=partial, spec=spec)
    return model


def as_run(name: str, data_dir: str | Path | None = None):
    """A preset as a zoo.training.Run (no training): its model, data spec and figure, in a
    run directory DATA_DIR/presets/MODEL.PRESET (config.json, metrics.json, model.keras),
    so export, predict, attack and `--from` take it like any run."""
    from zoo import files
    from zoo.training import Run

    spec, preset = find(name)
    data_json = _data_json(preset)
    data_spec = DataSpec.from_json(data_json)
    model = build(spec, preset.name, data_spec=data_spec, data_dir=data_dir)
    found_hash = dict(zip(("algorithm", "digest"), preset.file_hash))
    folder = cache_dir(data_dir) / "presets" / full_name(spec, preset)
    folder.mkdir(parents=True, exist_ok=True)
    evaluation = dict(preset.evaluation)
    config = {"model": spec.name, "family": spec.family, "task": data_spec.task,
              "dataset": (preset.figure.dataset if preset.figure else "") or data_spec.name,
              "seed": evaluation.get("seed", 0), "split": evaluation.get("split"), "limit": None,
              "hyperparameters": spec.resolve(dict(preset.hyperparameters)), "data_spec": data_json,
              "preset": {"name": full_name(spec, preset), "source": preset.source, **found_hash}}
    metrics = {"status": "completed", "epochs_run": 0, "train_seconds": 0.0}
    if preset.figure is not None and preset.figure.metric.startswith("test_"):  # recorded, not measured now
        metrics[preset.figure.metric] = float(preset.figure.value)
        metrics["figure_source"] = preset.figure.source
    before = folder / "config.json"
    same = before.is_file() and json.loads(before.read_text()).get("preset") == config["preset"]
    if not (same and (folder / "model.keras").is_file()):  # first use, or the preset's file changed
        with files.replacing(folder / "model.keras") as tmp:
            model.save(tmp)
    files.write_json(folder / "config.json", config)
    files.write_json(folder / "metrics.json", metrics)
    files.write_json(folder / "history.json", {})
    return Run(folder, config, {}, metrics, model)


def exported(name: str, data_dir: str | Path | None = None) -> Path:
    """The preset exported as a SavedModel (once, into DATA_DIR/presets/MODEL.PRESET/saved_models/),
    for `zoo predict MODEL.PRESET`; returns the version directory."""
    spec, preset = find(name)
    root = cache_dir(data_dir) / "presets" / full_name(spec, preset) / f"saved_models-{preset.file_hash[1][:12]}"
    version = root / full_name(spec, preset) / "1"
    if (version / "saved_model.pb").is_file():
        return version
    from zoo.export import export_run

    return export_run(as_run(name, data_dir), name=full_name(spec, preset), version=1, out=root, overwrite=True)


def evaluate(name: str, data_dir: str | Path | None = None) -> dict[str, float]:
    """The preset's test metrics, measured now on the test split its figure was measured on
    (its dataset, split and seed): what a shipped preset's recorded figure is checked against."""
    import math

    from zoo.data import load
    from zoo.spec import UNSUPERVISED_TASKS
    from zoo.training import compile_model, task_for

    run = as_run(name, data_dir)
    spec, preset = find(name)
    dataset = load(run.config["dataset"], split=tuple(run.config["split"]) if run.config.get("split") else None,
                   seed=int(run.config.get("seed") or 0), data_dir=data_dir)
    task = task_for(spec, dataset.spec)
    compile_model(run.model, spec, run.hyperparameters, dataset.spec,
                  steps_per_epoch=math.ceil(dataset.spec.sizes["train"] / 32))
    targets = "inputs" if task in UNSUPERVISED_TASKS else "labels"
    got = run.model.evaluate(dataset.pipeline("test", batch_size=256, targets=targets),
                             return_dict=True, verbose=0)
    return {f"test_{k}": float(v) for k, v in got.items()}


# --- listing for people ------------------------------------------------------------------------

COLUMNS = ("preset", "figure", "size", "source", "license")


def size_text(spec: ModelSpec, preset: WeightPreset, data_dir: str | Path | None = None) -> str:
    """The weights file's size when it is on this machine (shipped, or downloaded before)."""
    if preset.source.startswith(PACKAGE):
        module, _, relative = preset.source[len(PACKAGE):].partition("/")
        path = Path(str(importlib.resources.files(module).joinpath(relative)))
    elif preset.source.startswith(URL_SCHEMES):
        path = cache_dir(data_dir) / "weights" / preset.source.rstrip("/").rsplit("/", 1)[-1]
    else:
        path = Path(preset.source) / "model.keras"
    if not path.is_file():
        return "download" if preset.source.startswith(URL_SCHEMES) else "missing"
    size = path.stat().st_size
    return f"{size / 2 ** 20:.1f} MB" if size >= 2 ** 20 else f"{size / 2 ** 10:.0f} KB"


def figure_text(preset: WeightPreset) -> str:
    f = preset.figure
    return f"{f.metric} {f.value:.4g} on {f.dataset}" if f else "-"


def rows(pattern: str | None = None) -> list[tuple[str, ...]]:
    """`zoo list --pretrained`: a row per preset (imports the specs, not TensorFlow)."""
    return [(full_name(spec, p), figure_text(p), size_text(spec, p),
             "shipped in " + p.source[len(PACKAGE):].split("/")[0] if p.source.startswith(PACKAGE) else p.source,
             p.license or "-") for spec, p in listing(pattern)]


def describe(spec: ModelSpec) -> list[str]:
    """`zoo info` lines: the model's weight presets."""
    if not spec.presets:
        return ["presets:           none (zoo list --pretrained)"]
    lines = [f"presets:           {', '.join(spec.presets)} (zoo train {spec.name} --weights NAME, "
             f"zoo predict {spec.name}.NAME)"]
    for p in spec.presets.values():
        algorithm, digest = p.file_hash
        lines.append(f"  {p.name:16} {p.summary}")
        lines.append(f"    {'source':20} {p.source}" + (f" ({algorithm} {digest})" if digest else ""))
        lines.append(f"    {'figure':20} {figure_text(p)}" + (f" ({p.figure.source})" if p.figure else ""))
        if p.hyperparameters:
            lines.append(f"    {'layout':20} " + ", ".join(f"{k}={v}" for k, v in p.hyperparameters.items()))
        lines.append(f"    {'license':20} {p.license or '-'}")
    return lines
