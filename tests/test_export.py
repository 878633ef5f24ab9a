"""zoo.export: layout, metadata, atomic versions, parity of the exported
signature in a fresh TensorFlow-only process, TFLite/ONNX, warm-up file, and
`zoo predict`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from zoo import export as zexport
from zoo.errors import ZooError
from zoo.spec import DataSpec

#: model name -> (dataset, hyperparameters) for the fresh-process parity test.
#: Adding a family is one line here.
PARITY_CASES = {  # one small run per family: model -> (dataset, hyperparameters)
    "mlp": ("iris", {"units": 8, "epochs": 2}),
    "lenet5": ("digits", {"epochs": 1}),
    "resnet20": ("digits", {"epochs": 1, "width": 0.25}),
    "lstm": ("sines", {"epochs": 1, "units": 8}),
    "rbm": ("digits", {"epochs": 1, "units": 16}),
    "dbn": ("digits", {"epochs": 1, "widths": [32, 16], "pretrain_epochs": 1}),
    "autoencoder-rbm": ("digits", {"epochs": 1, "depth": 2, "units": 32, "code_size": 4, "pretrain_epochs": 1}),
}

FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    assert not any(m == "zoo" or m.startswith(("zoo.", "plugins")) for m in sys.modules), "zoo was imported"
    for model_dir, inputs, out in json.load(open(sys.argv[1])):
        sig = tf.saved_model.load(model_dir).signatures["serving_default"]
        (name, spec), = sig.structured_input_signature[1].items()
        x = np.load(inputs)
        result = sig(**{name: tf.constant(x, dtype=spec.dtype)})
        np.savez(out, **{k: v.numpy() for k, v in result.items()})
""")


def _train(model: str, dataset: str, runs: Path, **hp):
    from zoo.training import train

    return train(model, dataset, runs_dir=runs, verbose=0, **hp)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """model name -> its tiny run (PARITY_CASES), each trained at most once per module."""
    cache = {}

    def get(model: str):
        if model not in cache:
            dataset, hp = PARITY_CASES[model]
            cache[model] = _train(model, dataset, tmp_path_factory.mktemp("runs"), **hp)
        return cache[model]

    return get


@pytest.fixture(scope="module")
def run(trained):
    """A tiny MLP trained once for this module (iris, 2 epochs, 8 units)."""
    return trained("mlp")


@pytest.fixture(scope="module")
def fresh_outputs(trained, tmp_path_factory):
    """model name -> (its run, the raw inputs, the outputs of its export's signature): every
    PARITY_CASES export loaded in ONE fresh TensorFlow-only process (TensorFlow's import
    costs ~7 s: once, not once per family)."""
    tmp = tmp_path_factory.mktemp("parity")
    cases = {}
    for model in sorted(PARITY_CASES):
        run = trained(model)
        version_dir = zexport.export_run(run, out=tmp / model)
        # raw (un-preprocessed) test examples plus random ones
        test_x = zexport.raw_from_preprocessed(run.data_spec.preprocessing, run.dataset.arrays["test"][0])
        raw_x = np.concatenate([test_x, zexport.example_inputs(run.data_spec, 16, seed=3)]).astype("float32")
        np.save(tmp / f"{model}.npy", raw_x)
        cases[model] = (run, raw_x, [str(version_dir), str(tmp / f"{model}.npy"), str(tmp / f"{model}.npz")])
    (tmp / "cases.json").write_text(json.dumps([paths for _, _, paths in cases.values()]))
    proc = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(tmp / "cases.json")], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = {}
    for model, (run, raw_x, paths) in cases.items():
        with np.load(paths[2]) as z:
            outputs[model] = (run, raw_x, {k: z[k] for k in z.files})
    return outputs


@pytest.mark.parametrize("model", sorted(PARITY_CASES))
def test_signature_parity_in_fresh_tensorflow_only_process(model, fresh_outputs):
    run, raw_x, got = fresh_outputs[model]
    want = zexport.reference_outputs(run.model, run.data_spec, run.config["task"], raw_x)
    assert zexport.compare(want, got, tolerance=1e-5) <= 1e-5
    # the raw inputs really were preprocessed inside the signature (not fed as-is)
    assert run.data_spec.preprocessing["type"] in ("standardize", "rescale")


def test_layout_metadata_and_versions(run, tmp_path):
    out = tmp_path / "saved"
    v1 = zexport.export_run(run.dir, out=out)
    assert v1 == out / "mlp" / "1"
    assert (v1 / "saved_model.pb").is_file() and (v1 / "variables").is_dir()
    meta = json.loads((v1 / "assets.extra" / "metadata.json").read_text())
    assert meta["model"] == "mlp" and meta["version"] == 1 and meta["task"] == "classification"
    assert meta["class_names"] == ["setosa", "versicolor", "virginica"]
    assert meta["hyperparameters"]["units"] == 8
    assert meta["dataset"]["name"] == "iris"
    assert set(meta["test_metrics"]) >= {"test_accuracy", "test_loss"}
    assert meta["versions"]["tensorflow"]
    assert list(meta["signature"]["inputs"]) == ["features"]
    assert set(meta["signature"]["outputs"]) == {"probabilities", "class_ids"}
    assert meta["signature"]["outputs"]["probabilities"]["shape"] == [-1, 3]
    assert meta["parity"]["max_abs_diff"]["savedmodel"] <= 1e-5

    assert zexport.export_run(run, out=out) == out / "mlp" / "2"
    with pytest.raises(ZooError, match="already exists"):
        zexport.export_run(run, out=out, version=1)
    assert zexport.export_run(run, out=out, version=1, overwrite=True, name="mlp") == v1
    named = zexport.export_run(run, out=out, name="iris-classifier", version=7)
    assert named == out / "iris-classifier" / "7"
    leftovers = [p.name for p in (out / "mlp").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_signature_names_and_preprocessing(run, tmp_path):
    import tensorflow as tf

    v = zexport.export_run(run, out=tmp_path)
    sig = tf.saved_model.load(str(v)).signatures["serving_default"]
    assert list(sig.structured_input_signature[1]) == ["features"]
    assert set(sig.structured_outputs) == {"probabilities", "class_ids"}
    raw = zexport.raw_from_preprocessed(run.data_spec.preprocessing, run.dataset.arrays["test"][0])
    served = sig(features=tf.constant(raw))
    keras_probs = run.model.predict(run.dataset.arrays["test"][0], verbose=0)
    np.testing.assert_allclose(served["probabilities"].numpy(), keras_probs, atol=1e-5)
    np.testing.assert_array_equal(served["class_ids"].numpy(), keras_probs.argmax(-1))


def test_failed_export_leaves_nothing_behind(run, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(zexport, "write_warmup", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        zexport.export_run(run, out=tmp_path)
    assert list((tmp_path / "mlp").iterdir()) == []


def test_warmup_file_holds_prediction_logs(run, tmp_path):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    v = zexport.export_run(run, out=tmp_path, name="iris")
    records = [r.numpy() for r in tf.data.TFRecordDataset(str(v / "assets.extra" / "tf_serving_warmup_requests"))]
    logs = [prediction_log_pb2.PredictionLog.FromString(r) for r in records]
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log", "classify_log"] * 2
    sizes = []
    for log in logs[::2]:
        request = log.predict_log.request
        assert (request.model_spec.name, request.model_spec.signature_name) == ("iris", "serving_default")
        x = tf.make_ndarray(request.inputs["features"])
        assert x.dtype == np.float32 and x.shape[1:] == (4,)
        sizes.append(x.shape[0])
    assert sizes[0] == 1 and sizes[1] > 1
    classify = logs[3].classify_log.request
    assert classify.model_spec.signature_name == "classification"
    assert len(classify.input.example_list.examples) == sizes[1]


def test_classification_signature_over_tf_examples(run, tmp_path):
    """Tabular classifiers get TensorFlow Serving's classify signature: serialized
    tf.Examples in (feature "features"), class names and scores out."""
    import tensorflow as tf

    v = zexport.export_run(run, out=tmp_path)
    meta = json.loads((v / "assets.extra" / "metadata.json").read_text())
    assert meta["signatures"] == ["serving_default", "classification"]
    assert meta["parity"]["max_abs_diff"]["classification"] <= 1e-5
    raw = zexport.raw_from_preprocessed(run.data_spec.preprocessing, run.dataset.arrays["test"][0])[:5]
    got = zexport.call_task_signature(v, "classification", "features", raw)
    assert got["classes"][0].tolist() == [n.encode() for n in run.data_spec.class_names]
    want = zexport.reference_outputs(run.model, run.data_spec, "classification", raw)
    np.testing.assert_allclose(got["scores"], want["probabilities"], atol=1e-5)
    sig_def = tf.saved_model.load(str(v)).signatures["classification"]
    assert list(sig_def.structured_input_signature[1]) == ["inputs"]


def test_stale_temporary_folders_are_removed_and_listed_by_doctor(run, tmp_path, capsys):
    from zoo.doctor import stale_exports

    out = tmp_path / "saved"
    model_dir = out / "mlp"
    dead = model_dir / ".3.tmp-999999999-1"  # no such process
    (dead / "variables").mkdir(parents=True)
    alive = model_dir / f".4.tmp-{os.getpid()}-1"  # an export still running (this process)
    alive.mkdir()
    assert stale_exports(str(out)) == [str(dead)]
    zexport.export_run(run, out=out)
    assert "left by an export that was killed" in capsys.readouterr().err
    assert not dead.exists() and alive.exists()
    assert stale_exports(str(out)) == []


def test_export_of_a_damaged_model_keras_names_the_cause(run, tmp_path):
    damaged = tmp_path / "run"
    shutil.copytree(run.dir, damaged)
    data = (damaged / "model.keras").read_bytes()
    (damaged / "model.keras").write_bytes(data[:107])
    with pytest.raises(ZooError, match=r"model.keras is damaged \(107 bytes, not a complete Keras archive"):
        zexport.export_run(damaged, out=tmp_path / "saved")


def test_generic_models_autoencoder_binary_and_regression(tmp_path):
    """save_signature works for any keras.Model + DataSpec + task, not just zoo runs."""
    import keras

    inputs = keras.Input((6,), name="pixels")
    code = keras.layers.Dense(2, activation="relu", name="code")(inputs)
    recon = keras.layers.Dense(6, activation="sigmoid", name="decoder")(code)
    autoencoder = keras.Model(inputs, recon)
    spec = DataSpec(name="toy", task="reconstruction", input_shape=(6,), input_kind="image",
                    preprocessing={"type": "rescale", "scale": 1 / 255, "offset": 0.0}, value_range=(0.0, 1.0))
    v = zexport.export_model(autoencoder, spec, "reconstruction", name="ae", out=tmp_path)
    meta = json.loads((v / "assets.extra" / "metadata.json").read_text())
    assert list(meta["signature"]["inputs"]) == ["images"]
    assert set(meta["signature"]["outputs"]) == {"reconstruction", "code"}
    raw = zexport.example_inputs(spec, 5, seed=1)
    assert raw.max() > 1.5  # raw pixels, not [0, 1]
    assert zexport.compare(zexport.reference_outputs(autoencoder, spec, "reconstruction", raw),
                           zexport.call_saved_model(v, raw)) <= 1e-5

    binary = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    bspec = DataSpec(name="b", task="classification", input_shape=(3,), num_classes=2,
                     preprocessing={"type": "standardize", "mean": [1.0, 2.0, 3.0], "std": [2.0, 2.0, 2.0]})
    zexport.save_signature(binary, bspec, "classification", tmp_path / "binary")
    x = zexport.example_inputs(bspec, 4)
    out = zexport.call_saved_model(tmp_path / "binary", x)
    assert out["probabilities"].shape == (4, 2)
    np.testing.assert_allclose(out["probabilities"].sum(-1), 1.0, atol=1e-6)
    p = binary.predict((x - np.array([1.0, 2.0, 3.0], "float32")) / 2.0, verbose=0)
    np.testing.assert_allclose(out["probabilities"][:, 1:], p, atol=1e-5)

    reg = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    rspec = DataSpec(name="r", task="regression", input_shape=(2,), num_targets=3, preprocessing={"type": "none"})
    zexport.save_signature(reg, rspec, "regression", tmp_path / "reg")
    x = np.ones((2, 2), "float32")
    out = zexport.call_saved_model(tmp_path / "reg", x)
    assert set(out) == {"predictions"}
    np.testing.assert_allclose(out["predictions"], reg.predict(x, verbose=0), atol=1e-5)


def test_cli_export_with_tflite(run, tmp_path, capsys):
    from zoo.cli import main

    assert main(["export", str(run.dir), "--out", str(tmp_path), "--version", "3", "--format", "tflite"]) == 0
    printed = capsys.readouterr().out
    assert "mlp/3" in printed and "tflite" in printed
    v = tmp_path / "mlp" / "3"
    assert (v / "model.tflite").stat().st_size > 0
    meta = json.loads((v / "assets.extra" / "metadata.json").read_text())
    assert meta["parity"]["max_abs_diff"]["tflite"] <= 1e-5
    raw = zexport.example_inputs(run.data_spec, 6, seed=5)
    assert zexport.compare(zexport.reference_outputs(run.model, run.data_spec, "classification", raw),
                           zexport.call_tflite(v / "model.tflite", "features", raw)) <= 1e-5
    assert main(["export", str(run.dir), "--out", str(tmp_path), "--version", "3"]) == 2
    assert main(["export", str(run.dir), "--out", str(tmp_path), "--format", "pickle"]) == 2


def test_onnx_export(run, tmp_path):
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    v = zexport.export_run(run, out=tmp_path, formats=["onnx"])
    raw = zexport.example_inputs(run.data_spec, 6, seed=2)
    got = zexport.call_onnx(v / "model.onnx", "features", raw)
    assert set(got) == {"probabilities", "class_ids"}
    assert zexport.compare(zexport.reference_outputs(run.model, run.data_spec, "classification", raw), got) <= 1e-5


def test_zoo_predict_reads_csv_and_npy(run, tmp_path, capsys):
    from zoo.cli import main

    v = zexport.export_run(run, out=tmp_path / "saved")
    raw = zexport.raw_from_preprocessed(run.data_spec.preprocessing, run.dataset.arrays["test"][0])
    want = zexport.reference_outputs(run.model, run.data_spec, "classification", raw)
    csv = tmp_path / "x.csv"
    csv.write_text("a,b,c,d\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in raw) + "\n")
    np.save(tmp_path / "x.npy", raw)
    for path in (csv, tmp_path / "x.npy"):
        assert main(["predict", str(v.parent), "--input", str(path)]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [r["class_ids"] for r in rows] == want["class_ids"].tolist()
        assert rows[0]["class_name"] == run.data_spec.class_names[rows[0]["class_ids"]]
        np.testing.assert_allclose([r["probabilities"] for r in rows], want["probabilities"], atol=1e-5)
    (tmp_path / "bad.csv").write_text("1,2\n3,4\n")
    assert main(["predict", str(v), "--input", str(tmp_path / "bad.csv")]) == 2
    assert "takes [4]" in capsys.readouterr().err


def test_subclassed_model_with_batchnorm_and_dropout(tmp_path):
    """A third-party style subclassed model (custom train_step, training-only layers)."""
    import keras

    class Tiny(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.hidden = keras.layers.Dense(8, activation="relu", name="hidden")
            self.norm = keras.layers.BatchNormalization(name="hidden_bn")
            self.drop = keras.layers.Dropout(0.5, name="hidden_dropout")
            self.head = keras.layers.Dense(3, activation="softmax", name="output")

        def call(self, x, training=False):
            return self.head(self.drop(self.norm(self.hidden(x), training=training), training=training))

        def train_step(self, data):
            return super().train_step(data)

    model = Tiny()
    model(np.zeros((1, 4), "float32"))
    spec = DataSpec(name="t", task="classification", input_shape=(4,), num_classes=3, class_names=("a", "b", "c"),
                    preprocessing={"type": "standardize", "mean": [1.0, 2.0, 3.0, 4.0], "std": [1.0, 1.0, 2.0, 2.0]})
    v = zexport.export_model(model, spec, "classification", name="tiny", out=tmp_path, formats="tflite")
    raw = zexport.example_inputs(spec, 6, seed=4)
    want = zexport.reference_outputs(model, spec, "classification", raw)
    assert zexport.compare(want, zexport.call_saved_model(v, raw)) <= 1e-5
    assert zexport.compare(want, zexport.call_tflite(v / "model.tflite", "features", raw)) <= 1e-5


def test_zoo_predict_reads_images(tmp_path, capsys):
    import keras
    from PIL import Image

    from zoo.cli import main

    inputs = keras.Input((4, 4, 1), name="images")
    flat = keras.layers.Flatten(name="flatten")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="output")(flat))
    spec = DataSpec(name="img", task="classification", input_shape=(4, 4, 1), num_classes=2, class_names=("dark", "light"),
                    input_kind="image", preprocessing={"type": "rescale", "scale": 1 / 255, "offset": 0.0},
                    value_range=(0.0, 1.0))
    v = zexport.export_model(model, spec, "classification", name="img", out=tmp_path / "saved")
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    pixels = [np.full((8, 8), 10, "uint8"), np.arange(64, dtype="uint8").reshape(8, 8) * 4]
    for i, p in enumerate(pixels):
        Image.fromarray(p).save(pictures / f"{i}.png")  # 8x8: resized to the model's 4x4
    assert main(["predict", str(v), "--input", str(pictures)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2
    resized = np.stack([np.asarray(Image.fromarray(p).resize((4, 4), Image.BILINEAR), "float32")[..., None]
                        for p in pixels])
    want = zexport.reference_outputs(model, spec, "classification", resized)
    np.testing.assert_allclose([r["probabilities"] for r in rows], want["probabilities"], atol=1e-5)
    assert [r["class_name"] for r in rows] == [spec.class_names[i] for i in want["class_ids"]]
