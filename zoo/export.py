"""Export a trained run as a versioned TensorFlow SavedModel that TensorFlow
Serving (or `zoo serve`) can serve, with optional ONNX and TFLite copies.

    saved_models/<name>/<version>/
        saved_model.pb, variables/     the `serving_default` signature: named raw
                                       inputs in, named outputs out, with the
                                       training preprocessing inside the graph;
                                       tabular classifiers and regressors also get
                                       TensorFlow Serving's `classification` /
                                       `regression` signatures over tf.Examples
        assets.extra/metadata.json     model, hyperparameters, dataset, class names,
                                       signature description, test metrics, versions
        assets.extra/tf_serving_warmup_requests   TFRecord of PredictionLog protos
        model.onnx, model.tflite       only when asked for (formats=("onnx", "tflite"))

A version is written beside its final place (a hidden `.N.tmp-PID-TIME` folder)
and renamed into it, so a server watching the folder never sees half a version;
such folders left by a killed export are removed by the next export of the model.
Every export checks that the saved signatures, reloaded, give the Keras model's
outputs on raw inputs.

This module imports TensorFlow only inside functions: the CLI imports it at
start-up to register `zoo export` and `zoo predict`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.commands import command
from zoo.errors import ZooError
from zoo.files import process_alive
from zoo.spec import DataSpec

SIGNATURE = "serving_default"
CLASSIFY_SIGNATURE, REGRESS_SIGNATURE = "classification", "regression"
METHOD_NAMES = {CLASSIFY_SIGNATURE: "tensorflow/serving/classify", REGRESS_SIGNATURE: "tensorflow/serving/regress"}
#: hidden folders an export writes before renaming (.N.tmp-PID-TIME) or while replacing (.N.old-PID-TIME)
TEMP_DIR = re.compile(r"^\.(\d+)\.(tmp|old)-(\d+)-(\d+)$")
METADATA_FILE = "metadata.json"
WARMUP_FILE = "tf_serving_warmup_requests"
FORMATS = ("onnx", "tflite")
#: largest difference allowed between the exported signature and the Keras model
TOLERANCE = 1e-5
#: signature input name by the kind of data the model reads
INPUT_NAMES = {"image": "images", "sequence": "sequences", "text": "tokens"}
OUTPUT_DESCRIPTIONS = {
    "probabilities": "probability of each class, in the order of class_names (batch, num_classes)",
    "class_ids": "index of the most probable class (batch,)",
    "predictions": "the model's outputs, in the targets' own units",
    "reconstruction": "the model's reconstruction of the (preprocessed) input",
    "code": "the autoencoder's code: the output of its layer named 'code'",
    "features": "the learned representation of the (preprocessed) input, e.g. an RBM's hidden probabilities",
}


# --- the signature -----------------------------------------------------------------


def input_name(data_spec: DataSpec) -> str:
    """The signature's input name: 'images', 'sequences', 'tokens' or 'features'."""
    return INPUT_NAMES.get(data_spec.input_kind, "features")


def _model_input_dtype(model) -> str:
    try:
        dtype = model.inputs[0].dtype
    except (AttributeError, IndexError, ValueError, TypeError):
        return "float32"
    return str(getattr(dtype, "name", dtype))


def input_dtype(model, data_spec: DataSpec) -> str:
    """Raw inputs are float32 when the data is rescaled or standardized, else the
    model's own input dtype (e.g. int32 token ids)."""
    if data_spec.preprocessing.get("type") in ("rescale", "standardize"):
        return "float32"
    return _model_input_dtype(model)


def _single_input(model) -> None:
    inputs = getattr(model, "inputs", None)
    if inputs is not None and len(inputs) > 1:
        raise ZooError(f"model {model.name!r} has {len(inputs)} inputs; export supports single-input models")


def _serving_core(model, task: str):
    """A Keras model returning the raw outputs to expose: the model itself, or for
    an autoencoder with a layer named 'code', a model returning (reconstruction, code)."""
    import keras

    if task == "reconstruction" and getattr(model, "inputs", None) is not None:
        try:
            code = model.get_layer("code")
        except ValueError:
            return model, False
        return keras.Model(model.inputs, [model.outputs[0], code.output], name=f"{model.name}_serving"), True
    return model, False


class _TFOps:
    """The few tensor ops _named_outputs needs, as plain TF ops (keras.ops.argmax
    adds a BitwiseAnd for -0.0 that TFLite cannot run)."""

    @staticmethod
    def cast(x, dtype):
        import tensorflow as tf

        return tf.cast(x, dtype)

    @staticmethod
    def concatenate(xs, axis):
        import tensorflow as tf

        return tf.concat(xs, axis)

    @staticmethod
    def argmax(x, axis):
        import tensorflow as tf

        return tf.math.argmax(x, axis=axis)


class _NumpyOps:
    cast = staticmethod(lambda x, dtype: np.asarray(x).astype(dtype))
    concatenate = staticmethod(lambda xs, axis: np.concatenate(xs, axis=axis))
    argmax = staticmethod(lambda x, axis: np.argmax(x, axis=axis))


def _named_outputs(raw: Any, task: str, with_code: bool, ops) -> dict[str, Any]:
    """Name the model's outputs for the task (tensors through `ops`: _TFOps or _NumpyOps)."""
    extra = {}
    if with_code:
        raw, code = raw
        extra["code"] = ops.cast(code, "float32")
    elif isinstance(raw, Mapping):
        raw = dict(raw)
        first = next(iter(raw))
        extra = {k: ops.cast(v, "float32") for k, v in raw.items() if k != first}
        raw = raw[first]
    elif isinstance(raw, (list, tuple)):
        extra = {f"output_{i}": ops.cast(v, "float32") for i, v in enumerate(raw[1:], start=1)}
        raw = raw[0]
    raw = ops.cast(raw, "float32")
    if task == "classification":
        probs = ops.concatenate([1.0 - raw, raw], axis=-1) if raw.shape[-1] == 1 else raw
        return {"probabilities": probs, "class_ids": ops.cast(ops.argmax(probs, axis=-1), "int64"), **extra}
    if task == "reconstruction":
        return {"reconstruction": raw, **extra}
    if task == "features":
        return {"features": raw, **extra}
    return {"predictions": raw, **extra}


def _tf_preprocess(preprocessing: Mapping[str, Any], x, dtype: str):
    import tensorflow as tf

    kind = preprocessing.get("type", "none")
    if kind == "rescale":
        return tf.cast(x, tf.float32) * float(preprocessing["scale"]) + float(preprocessing["offset"])
    if kind == "standardize":
        mean = tf.constant(np.asarray(preprocessing["mean"], "float32"))
        std = tf.constant(np.asarray(preprocessing["std"], "float32"))
        return (tf.cast(x, tf.float32) - mean) / std
    return tf.cast(x, dtype)


def save_signature(model, data_spec: DataSpec, task: str, path: str | os.PathLike) -> None:
    """Write a SavedModel at `path` whose `serving_default` signature takes raw
    inputs (named by input_name()), applies the training preprocessing, and
    returns named outputs (see OUTPUT_DESCRIPTIONS)."""
    import keras
    import tensorflow as tf

    _single_input(model)
    model_dtype = _model_input_dtype(model)
    if not model.built:  # a subclassed model never called: create its variables outside the graph
        model(np.zeros((1, *data_spec.input_shape), model_dtype if model_dtype != "string" else object))
    core, with_code = _serving_core(model, task)
    dtype = input_dtype(model, data_spec)
    preprocessing = dict(data_spec.preprocessing)

    def serve(x):
        x = _tf_preprocess(preprocessing, x, model_dtype)
        return _named_outputs(core(x, training=False), task, with_code, _TFOps)

    spec = tf.TensorSpec((None, *data_spec.input_shape), dtype, name=input_name(data_spec))
    archive = keras.export.ExportArchive()
    archive.track(core)
    archive.add_endpoint(SIGNATURE, serve, input_signature=[spec])
    for name, fn in _task_endpoints(serve, data_spec, task, dtype).items():
        archive.add_endpoint(name, fn, input_signature=[tf.TensorSpec((None,), tf.string, name="inputs")])
    try:
        archive.write_out(str(path), verbose=False)
    except TypeError:  # older Keras without `verbose`
        archive.write_out(str(path))
    _set_method_names(Path(path))


def task_signature(data_spec: DataSpec, task: str, dtype: str) -> str | None:
    """"classification" or "regression" when the export gets TensorFlow Serving's
    signature of that name: a tabular classifier, or a regressor of one target,
    with float features."""
    if data_spec.input_kind != "tabular" or len(data_spec.input_shape) != 1 or dtype != "float32":
        return None
    if task == "classification":
        return CLASSIFY_SIGNATURE
    if task == "regression" and (data_spec.num_targets or 1) == 1:
        return REGRESS_SIGNATURE
    return None


def _task_endpoints(serve, data_spec: DataSpec, task: str, dtype: str) -> dict[str, Any]:
    """The classify / regress endpoint over serialized tf.Examples whose feature named
    like the input ("features") holds the raw values (TensorFlow Serving's
    signature_defs: input "inputs"; outputs "classes" and "scores", or "outputs")."""
    import tensorflow as tf

    kind = task_signature(data_spec, task, dtype)
    if kind is None:
        return {}
    feature = input_name(data_spec)
    parse_spec = {feature: tf.io.FixedLenFeature(list(data_spec.input_shape), tf.float32)}
    names = list(data_spec.class_names or [str(i) for i in range(data_spec.num_classes or 0)])

    def features(serialized):
        return tf.io.parse_example(serialized, parse_spec)[feature]

    def classify(serialized):
        scores = serve(features(serialized))["probabilities"]
        names_t = tf.constant(names, tf.string) if names else tf.strings.as_string(tf.range(tf.shape(scores)[1]))
        return {"classes": tf.tile(names_t[None], [tf.shape(scores)[0], 1]), "scores": scores}

    def regress(serialized):
        return {"outputs": tf.reshape(serve(features(serialized))["predictions"], [-1])}

    return {kind: classify if kind == CLASSIFY_SIGNATURE else regress}


def _set_method_names(path: Path) -> None:
    """Give the classify / regress signatures their TensorFlow Serving method names
    (Keras writes every endpoint as a predict signature)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    defs = proto.meta_graphs[0].signature_def
    changed = [k for k in METHOD_NAMES if k in defs]
    for key in changed:
        defs[key].method_name = METHOD_NAMES[key]
    if changed:
        (path / "saved_model.pb").write_bytes(proto.SerializeToString())


def tf_examples(name: str, raw_x: np.ndarray) -> list[bytes]:
    """Serialized tf.train.Examples, one per row, with the row's values as float feature `name`."""
    from tensorflow.core.example import example_pb2

    out = []
    for row in np.asarray(raw_x, "float32").reshape(len(raw_x), -1):
        example = example_pb2.Example()
        example.features.feature[name].float_list.value.extend(row.tolist())
        out.append(example.SerializeToString())
    return out


# --- reference outputs and example inputs ----------------------------------------------


def reference_outputs(model, data_spec: DataSpec, task: str, raw_x: np.ndarray) -> dict[str, np.ndarray]:
    """What the signature must return for raw inputs `raw_x`, computed from the
    Keras model with numpy preprocessing (zoo.data.preprocess): the parity oracle."""
    import keras

    from zoo.data import preprocess

    core, with_code = _serving_core(model, task)
    x = preprocess(dict(data_spec.preprocessing), np.asarray(raw_x))
    dtype = _model_input_dtype(model)
    if data_spec.preprocessing.get("type") in (None, "none") and dtype != "string":
        x = x.astype(dtype)
    raw = core(keras.ops.convert_to_tensor(x), training=False)
    raw = keras.tree.map_structure(keras.ops.convert_to_numpy, raw)
    return _named_outputs(raw, task, with_code, _NumpyOps)


def raw_from_preprocessed(preprocessing: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    """Invert a fitted preprocessing: model-space inputs back to raw inputs."""
    kind = preprocessing.get("type", "none")
    if kind == "rescale":
        return ((x - float(preprocessing["offset"])) / float(preprocessing["scale"])).astype("float32")
    if kind == "standardize":
        return (x * np.asarray(preprocessing["std"], "float32")
                + np.asarray(preprocessing["mean"], "float32")).astype("float32")
    return x


def example_inputs(data_spec: DataSpec, n: int = 8, seed: int = 0, dtype: str = "float32",
                   preprocessed: np.ndarray | None = None) -> np.ndarray:
    """`n` raw inputs for checks and warm-up: real examples when given
    (preprocessed, as Dataset.arrays holds them), else random ones in the model's
    input range, mapped back to raw values."""
    rng = np.random.default_rng(seed)
    shape = (n, *data_spec.input_shape)
    if dtype == "string":
        return np.full(shape, b"", dtype=object)
    if preprocessed is not None and len(preprocessed):
        x = np.asarray(preprocessed[:n])
    elif not np.issubdtype(np.dtype(dtype), np.floating):
        return np.zeros(shape, dtype)
    elif data_spec.value_range:
        lo, hi = data_spec.value_range
        x = rng.uniform(lo, hi, size=shape).astype("float32")
    else:
        x = rng.standard_normal(shape).astype("float32")
    return raw_from_preprocessed(data_spec.preprocessing, x).astype(dtype)


def compare(expected: Mapping[str, np.ndarray], got: Mapping[str, Any], tolerance: float = TOLERANCE) -> float:
    """Largest absolute difference between two output dicts; ZooError past `tolerance`
    or when names, shapes or class ids differ."""
    if set(expected) != set(got):
        raise ZooError(f"exported outputs {sorted(got)} differ from the model's {sorted(expected)}")
    worst = 0.0
    for name, want in expected.items():
        have = np.asarray(got[name])
        if have.shape != want.shape:
            raise ZooError(f"exported output {name!r} has shape {have.shape}, the model gives {want.shape}")
        if not np.issubdtype(want.dtype, np.floating):
            if not np.array_equal(have, want):
                raise ZooError(f"exported output {name!r} differs from the model's")
            continue
        diff = float(np.max(np.abs(have.astype("float64") - want.astype("float64")))) if want.size else 0.0
        worst = max(worst, diff)
        if not diff <= tolerance:
            raise ZooError(f"exported output {name!r} differs from the model's by {diff:.3g} (> {tolerance:g})")
    return worst


def call_saved_model(path: str | os.PathLike, raw_x: np.ndarray) -> dict[str, np.ndarray]:
    """Load a SavedModel and call its serving_default signature on raw inputs."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    sig = loaded.signatures[SIGNATURE]
    (name, spec), = sig.structured_input_signature[1].items()
    out = sig(**{name: tf.constant(raw_x, dtype=spec.dtype)})
    return {k: v.numpy() for k, v in out.items()}


def call_task_signature(path: str | os.PathLike, kind: str, name: str, raw_x: np.ndarray) -> dict[str, np.ndarray]:
    """Call the classification / regression signature on raw inputs (as tf.Examples)."""
    import tensorflow as tf

    sig = tf.saved_model.load(str(path)).signatures[kind]
    return {k: v.numpy() for k, v in sig(inputs=tf.constant(tf_examples(name, raw_x))).items()}


def check_task_signature(kind: str, got: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray],
                         class_names: Sequence[str]) -> float:
    """Largest difference between a task signature's answer and the model's; ZooError past TOLERANCE."""
    if kind == CLASSIFY_SIGNATURE:
        labels = [[v.decode() for v in row] for row in got["classes"]]
        if any(row != list(class_names) for row in labels):
            raise ZooError(f"the classification signature's classes {labels[0]} are not {list(class_names)}")
        return compare({"probabilities": expected["probabilities"]}, {"probabilities": got["scores"]})
    return compare({"predictions": expected["predictions"].reshape(-1)}, {"predictions": got["outputs"]})


# --- warm-up requests --------------------------------------------------------------------


def prediction_log(model_name: str, inputs: Mapping[str, np.ndarray], signature: str = SIGNATURE):
    """A tensorflow.serving.PredictionLog holding one PredictRequest."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    log = prediction_log_pb2.PredictionLog()
    request = log.predict_log.request
    request.model_spec.name, request.model_spec.signature_name = model_name, signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return log


def task_log(model_name: str, kind: str, examples: Sequence[bytes]):
    """A PredictionLog holding a ClassificationRequest or RegressionRequest over serialized tf.Examples."""
    from tensorflow.core.example import example_pb2
    from tensorflow_serving.apis import prediction_log_pb2

    log = prediction_log_pb2.PredictionLog()
    request = (log.classify_log if kind == CLASSIFY_SIGNATURE else log.regress_log).request
    request.model_spec.name, request.model_spec.signature_name = model_name, kind
    for data in examples:
        request.input.example_list.examples.add().CopyFrom(example_pb2.Example.FromString(data))
    return log


def write_warmup(path: str | os.PathLike, model_name: str, name: str, examples: np.ndarray,
                 task: str | None = None) -> None:
    """TensorFlow Serving's warm-up file: a batch-1 and a small-batch request to
    serving_default (and to the classify / regress signature `task`, when given)."""
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for batch in (examples[:1], examples[:8]):
            writer.write(prediction_log(model_name, {name: batch}).SerializeToString())
            if task:
                writer.write(task_log(model_name, task, tf_examples(name, batch)).SerializeToString())


# --- other formats ----------------------------------------------------------------------


def export_tflite(saved_model: Path, out: Path) -> Path:
    """Convert the SavedModel's serving_default signature to a TFLite flatbuffer."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=[SIGNATURE])
    try:
        out.write_bytes(converter.convert())
    except Exception as exc:  # the converter raises many internal types
        raise ZooError(f"TFLite conversion failed: {_first_line(exc)}") from exc
    return out


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    hint = next((line for line in lines if "ops" in line.lower() and "select" in line.lower()), "")
    return f"{type(exc).__name__}: {lines[0][:300] if lines else ''}" + (f" ({hint.strip()[:200]})" if hint else "")


def call_tflite(path: str | os.PathLike, name: str, raw_x: np.ndarray) -> dict[str, np.ndarray]:
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "tf.lite.Interpreter is deprecated": still the one TF ships
        interpreter = tf.lite.Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner(SIGNATURE)
    return {k: np.asarray(v) for k, v in runner(**{name: raw_x}).items()}


def export_onnx(saved_model: Path, out: Path, name: str, opset: int | None = None) -> Path:
    """Convert the serving_default signature to ONNX with tf2onnx, keeping the
    signature's input and output names."""
    try:
        import tf2onnx
    except ImportError as exc:
        raise ZooError(f"ONNX export needs tf2onnx (pip install 'keras-zoo[onnx]'): {exc}") from None
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved_model))
    sig = loaded.signatures[SIGNATURE]
    (_, spec), = sig.structured_input_signature[1].items()
    names = sorted(sig.structured_outputs)  # tf.nest order: sorted keys

    @tf.function(input_signature=[tf.TensorSpec(spec.shape, spec.dtype, name=name)])
    def fn(x):
        out = loaded.signatures[SIGNATURE](**{name: x})
        return [tf.identity(out[k], name=k) for k in names]

    try:
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=opset)
    except Exception as exc:
        raise ZooError(f"ONNX conversion failed: {_first_line(exc)}") from exc
    _rename_onnx_outputs(proto, names)
    out.write_bytes(proto.SerializeToString())
    return out


def _rename_onnx_outputs(proto, names: Sequence[str]) -> None:
    """Give the ONNX graph's outputs the signature's output names."""
    mapping = {}
    for output, new in zip(proto.graph.output, names):
        mapping[output.name] = new
        output.name = new
    for node in proto.graph.node:
        for i, o in enumerate(node.output):
            if o in mapping:
                node.output[i] = mapping[o]
        for i, o in enumerate(node.input):
            if o in mapping:
                node.input[i] = mapping[o]
    input_names = {i.name: i for i in proto.graph.input}
    for old in list(input_names):
        if old.endswith(":0"):
            new = old[:-2]
            input_names[old].name = new
            for node in proto.graph.node:
                for i, o in enumerate(node.input):
                    if o == old:
                        node.input[i] = new


def call_onnx(path: str | os.PathLike, name: str, raw_x: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {name: raw_x})))


# --- export a run -------------------------------------------------------------------------


def next_version(model_dir: str | os.PathLike) -> int:
    """1 + the highest integer version under `model_dir` (1 when there is none)."""
    d = Path(model_dir)
    found = [int(p.name) for p in d.iterdir() if p.is_dir() and p.name.isdigit()] if d.is_dir() else []
    return max(found, default=0) + 1


def describe_signature(model, data_spec: DataSpec, task: str, outputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The signature's inputs and outputs for humans: name, dtype, shape, meaning."""
    kind = {"rescale": "rescaled", "standardize": "standardized"}.get(data_spec.preprocessing.get("type"))
    what = f"raw {data_spec.input_kind} inputs" + (f" (the signature does the {kind} preprocessing)" if kind else "")
    return {
        "name": SIGNATURE,
        "method_name": "tensorflow/serving/predict",
        "inputs": {input_name(data_spec): {"dtype": input_dtype(model, data_spec),
                                           "shape": [-1, *data_spec.input_shape], "description": what}},
        "outputs": {k: {"dtype": str(v.dtype), "shape": [-1, *v.shape[1:]],
                        "description": OUTPUT_DESCRIPTIONS.get(k, "an extra output of the model")}
                    for k, v in outputs.items()},
    }


def _parse_formats(formats: str | Sequence[str] | None) -> list[str]:
    if not formats:
        return []
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    items = [f.strip().lower() for f in items if f and f.strip()]
    unknown = [f for f in items if f not in FORMATS + ("savedmodel",)]
    if unknown:
        raise ZooError(f"unknown export format(s) {unknown}; use {', '.join(FORMATS)} (SavedModel is always written)")
    return [f for f in items if f != "savedmodel"]


def export_model(model, data_spec: DataSpec, task: str, *, name: str, version: int | None = None,
                 out: str | os.PathLike = "saved_models", overwrite: bool = False, formats: Sequence[str] = (),
                 metadata: Mapping[str, Any] | None = None, examples: np.ndarray | None = None) -> Path:
    """Export any keras.Model + DataSpec + task (no run directory needed); see export_run."""
    formats = _parse_formats(formats)
    if not name or "/" in name or name.startswith("."):
        raise ZooError(f"invalid export name {name!r}: use a plain folder name")
    if version is not None and (isinstance(version, bool) or int(version) < 0 or int(version) != version):
        raise ZooError(f"version must be a non-negative integer, got {version!r}")
    model_dir = Path(out) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_temp_dirs(model_dir):
        print(f"zoo export: removed {stale}, left by an export that was killed", file=sys.stderr)
    final = model_dir / str(version if version is not None else next_version(model_dir))
    if final.exists() and not overwrite:
        raise ZooError(f"{final} already exists; pass --overwrite (overwrite=True) or another --version")
    tmp = model_dir / f".{final.name}.tmp-{os.getpid()}-{time.time_ns()}"
    try:
        save_signature(model, data_spec, task, tmp)
        raw_x = example_inputs(data_spec, 8, dtype=input_dtype(model, data_spec), preprocessed=examples)
        expected = reference_outputs(model, data_spec, task, raw_x)
        parity = {"savedmodel": compare(expected, call_saved_model(tmp, raw_x))}
        key = input_name(data_spec)
        kind = task_signature(data_spec, task, input_dtype(model, data_spec))
        if kind:
            class_names = data_spec.class_names or [str(i) for i in range(expected["probabilities"].shape[-1])] \
                if kind == CLASSIFY_SIGNATURE else []
            parity[kind] = check_task_signature(kind, call_task_signature(tmp, kind, key, raw_x), expected,
                                                class_names)
        for fmt in formats:
            if fmt == "tflite":
                path = export_tflite(tmp, tmp / "model.tflite")
                parity["tflite"] = compare(expected, call_tflite(path, key, raw_x))
            elif fmt == "onnx":
                path = export_onnx(tmp, tmp / "model.onnx", key)
                parity["onnx"] = compare(expected, call_onnx(path, key, raw_x))
        extra = tmp / "assets.extra"
        extra.mkdir(exist_ok=True)
        write_warmup(extra / WARMUP_FILE, name, key, raw_x, task=kind)
        info = {
            "name": name,
            "version": int(final.name),
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "task": task,
            **dict(metadata or {}),
            "dataset": data_spec.to_json(),
            "class_names": list(data_spec.class_names) if data_spec.class_names else None,
            "signature": describe_signature(model, data_spec, task, expected),
            "signatures": [SIGNATURE, *([kind] if kind else [])],
            "preprocessing": dict(data_spec.preprocessing),
            "formats": ["savedmodel", *formats],
            "parity": {"examples": len(raw_x), "tolerance": TOLERANCE,
                       "max_abs_diff": {k: float(v) for k, v in parity.items()}},
        }
        info.setdefault("versions", _versions())
        (extra / METADATA_FILE).write_text(json.dumps(info, indent=2, default=_jsonable))
        _publish(tmp, final, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def stale_temp_dirs(root: str | os.PathLike) -> list[Path]:
    """Hidden temporary version folders under `root` (a model folder, or an export root
    of model folders) whose export process is gone: what a killed export leaves."""
    root = Path(root)
    if not root.is_dir():
        return []
    folders = [root, *(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))]
    found = []
    for folder in folders:
        for child in folder.iterdir():
            m = TEMP_DIR.match(child.name)
            if m and child.is_dir() and not process_alive(int(m[3])):
                found.append(child)
    return sorted(found)


def remove_stale_temp_dirs(model_dir: Path) -> list[Path]:
    """Remove what stale_temp_dirs finds in one model folder; returns the removed folders."""
    removed = [d for d in stale_temp_dirs(model_dir) if d.parent == model_dir]
    for d in removed:
        shutil.rmtree(d, ignore_errors=True)
    return removed


def check_keras_archive(path: Path) -> None:
    """ZooError naming the damage when a run's model.keras is not a whole Keras archive
    (Keras itself would say "File not found" for a file that exists)."""
    import zipfile

    if not path.is_file():
        return  # Run.load says what is missing
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        bad = str(exc)
    if bad:
        raise ZooError(f"{path} is damaged ({size} bytes, not a complete Keras archive: {bad}); it was probably "
                       "cut short when training was killed: run the same `zoo train ... --run-name` again to "
                       "rebuild it")


def _publish(tmp: Path, final: Path, overwrite: bool) -> None:
    """Rename the finished version into place (the atomic step)."""
    if final.exists():
        if not overwrite:
            raise ZooError(f"{final} appeared while exporting; pass another --version")
        old = final.with_name(f".{final.name}.old-{os.getpid()}-{time.time_ns()}")
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)


def _jsonable(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def _versions() -> dict[str, str]:
    from zoo.training import versions

    return versions()


def export_run(run: Any, *, name: str | None = None, version: int | None = None,
               out: str | os.PathLike = "saved_models", overwrite: bool = False,
               formats: str | Sequence[str] = ()) -> Path:
    """Export a training run (a run directory or a zoo.training.Run) to
    `out/NAME/VERSION/` and return that version directory.

    NAME defaults to the run's model name, VERSION to the next free integer.
    `formats` adds "onnx" and/or "tflite" copies beside the SavedModel; each is
    checked against the Keras model like the SavedModel is.
    """
    from zoo import presets
    from zoo.training import Run

    if not isinstance(run, Run) and presets.split_name(str(run)):  # MODEL.PRESET: its weights, no training
        run = presets.as_run(str(run))
    if not isinstance(run, Run):
        path = Path(run)
        if not path.is_dir():
            raise ZooError(f"run directory {str(path)!r} not found")
        check_keras_archive(path / "model.keras")
        run = Run.load(path)
    elif run.model is None:
        check_keras_archive(Path(run.dir) / "model.keras")
        run = Run.load(run.dir)
    config = run.config
    data_spec = run.data_spec
    task = config.get("task") or data_spec.task
    examples = None
    if run.dataset is not None:
        examples = run.dataset.arrays["test"][0]
    metadata = {
        "model": config.get("model"),
        "family": config.get("family"),
        "hyperparameters": config.get("hyperparameters"),
        "seed": config.get("seed"),
        "test_metrics": {k: v for k, v in run.metrics.items() if k.startswith(("test_", "baseline_"))},
        "training": {k: run.metrics.get(k) for k in ("status", "epochs_run", "train_seconds")},
        "run_dir": str(run.dir),
        "versions": _versions(),
        "trained_with": config.get("versions", {}),
        "provenance": config.get("provenance"),  # the distributions that supplied the model and its data
    }
    return export_model(run.model, data_spec, task, name=name or config["model"], version=version, out=out,
                        overwrite=overwrite, formats=formats, metadata=metadata, examples=examples)


# --- CLI -------------------------------------------------------------------------------------


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run directory written by `zoo train`, or a preset (MODEL.PRESET)")
    p.add_argument("--name", help="model name under the export root (default: the run's model)")
    p.add_argument("--version", type=int, help="integer version (default: the next free one)")
    p.add_argument("--out", default="saved_models", help="export root (default: saved_models/)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing version")
    p.add_argument("--format", default="", help="extra formats, comma-separated: onnx,tflite")


@command("export", _export_args)
def cmd_export(args: argparse.Namespace) -> int:
    """Export a run as a versioned SavedModel for TensorFlow Serving / `zoo serve`."""
    path = export_run(args.run_dir, name=args.name, version=args.version, out=args.out,
                      overwrite=args.overwrite, formats=args.format)
    info = json.loads((path / "assets.extra" / METADATA_FILE).read_text())
    print(f"exported: {path}")
    sig = info["signature"]
    print(f"  signature {sig['name']}: inputs {', '.join(sig['inputs'])} -> outputs {', '.join(sig['outputs'])}")
    for fmt, diff in info["parity"]["max_abs_diff"].items():
        print(f"  {fmt:10} max |diff| vs Keras model: {diff:.2e}")
    return 0


class _CallableModule(types.ModuleType):
    """`zoo.export(run, ...)` keeps working once this module is imported (importing
    a submodule replaces the package attribute of the same name)."""

    def __call__(self, run: Any, **options: Any) -> Path:
        return export_run(run, **options)


sys.modules[__name__].__class__ = _CallableModule
