"""Weight presets: declared in specs, listed without TensorFlow, fetched with their hash
checked (offline: one line saying which file to put where), loaded by layer name from
keras.applications' .h5 and Keras's .weights.h5, with a truthful transfer report; the
ImageNet presets equal keras.applications on raw pixels; the shipped presets still reach
their recorded figures."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import zoo
from zoo import presets, transfer
from zoo.errors import ZooError
from zoo.spec import WeightPreset


def _file_preset(path: Path, **fields) -> WeightPreset:
    """A preset of the weights file at `path`, served from a URL whose file name is its name."""
    base = {"name": "test", "source": f"https://example.invalid/{path.name}", "sha256": presets.file_digest(path),
            "data": {"task": "classification", "input_shape": [8, 8, 1], "num_classes": 10}}
    return WeightPreset(**{**base, **fields})


def _with_preset(model: str, preset: WeightPreset):
    spec = zoo.get_spec(model)
    return dataclasses.replace(spec, presets={**spec.presets, preset.name: preset})


def _in_cache(path: Path, data_dir: Path) -> Path:
    """Put a weights file where a download would have put it."""
    target = data_dir / "weights" / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(path.read_bytes())
    return target


def test_presets_and_recipes_are_listed_without_tensorflow():
    code = ("import sys; from zoo import presets, recipes\n"
            "names = [presets.full_name(s, p) for s, p in presets.listing()]\n"
            "paper = [s.name for s, r in recipes.listing() if r.name == 'paper']\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported TensorFlow'\n"
            "print(' '.join(names)); print(' '.join(paper))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert {"vgg16.imagenet", "vgg19.imagenet", "resnet50.imagenet", "resnet101.imagenet", "resnet152.imagenet",
            "lenet5.mnist", "mlp.digits", "autoencoder.mnist", "lstm.sines"} <= set(out[0].split())
    assert {"lenet5", "resnet20", "vgg16", "rbm", "dbn", "autoencoder-rbm", "mlp", "perceptron"} <= set(out[1].split())


def test_a_weights_file_loads_by_layer_name_and_a_new_head_replaces_its_own(tmp_path):
    source = zoo.build("mlp", input_shape=(8, 8, 1), num_classes=10)
    path = tmp_path / "mlp.weights.h5"
    source.save_weights(path)
    same = zoo.build("mlp", input_shape=(8, 8, 1), num_classes=10, weights=str(path))
    for a, b in zip(source.get_weights(), same.get_weights()):
        np.testing.assert_array_equal(a, b)
    five = zoo.build("mlp", input_shape=(8, 8, 1), num_classes=5, weights=str(path))
    np.testing.assert_array_equal(five.get_layer("dense2").get_weights()[0], source.get_layer("dense2").get_weights()[0])
    assert five.get_layer("output").kernel.shape[-1] == 5
    with pytest.raises(ZooError, match=r"does not fit 'mlp' built with these hyperparameters .*dense2.*holds no "
                                       r"architecture"):  # a .weights.h5 file: the architecture must be the same
        zoo.build("mlp", input_shape=(8, 8, 1), num_classes=10, widths=[64, 32], weights=str(path))
    source.save(tmp_path / "mlp.keras")  # a .keras model has its own architecture: copied layer by layer
    with pytest.raises(ZooError, match=r"only 1 of the 3 weight layers of 'mlp' \(.*\) fit .*dense2 \(source "
                                       r"\[\(64, 64\), \(64,\)\], model \[\(64, 32\), \(32,\)\]\).*--partial"):
        zoo.build("mlp", input_shape=(8, 8, 1), num_classes=10, widths=[64, 32], weights=str(tmp_path / "mlp.keras"))
    partial = zoo.build("mlp", input_shape=(8, 8, 1), num_classes=10, widths=[64, 32],
                        weights=str(tmp_path / "mlp.keras"), partial=True)
    np.testing.assert_array_equal(partial.get_layer("dense1").get_weights()[0], source.get_layer("dense1").get_weights()[0])


def test_keras_2_weights_files_load_by_name(tmp_path):
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    source = zoo.build("mlp", input_shape=(4,), num_classes=3, widths=[6, 5])
    path = tmp_path / "mlp.h5"
    with h5py.File(path, "w") as f:  # the format of keras.applications' published files
        legacy_h5_format.save_weights_to_hdf5_group(f, source)
    found = presets.source(str(path), zoo.get_spec("mlp"))
    assert list(found.arrays) == ["dense1", "dense2", "output"]
    loaded = zoo.build("mlp", input_shape=(4,), num_classes=3, widths=[6, 5], weights=str(path))
    for a, b in zip(source.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_file_with_another_hash_is_refused(tmp_path):
    weights = tmp_path / "w.weights.h5"
    zoo.build("mlp", input_shape=(4,), num_classes=3).save_weights(weights)
    spec = zoo.get_spec("mlp")
    data = tmp_path / "data"
    wrong = _file_preset(weights, sha256="0" * 64)
    cached = _in_cache(weights, data)
    with pytest.raises(ZooError, match=r"refused .*w\.weights\.h5: its sha256 is [0-9a-f]{64}, but mlp\.test expects "
                                       r"0{64} .*delete it and run again to download it from https://example"):
        presets.fetch(spec, wrong, data)
    cached.unlink()
    served = dataclasses.replace(wrong, source=weights.as_uri())  # a real download (file://) with a wrong hash
    with pytest.raises(ZooError, match="refused the download of mlp.test"):
        presets.fetch(spec, served, data)
    assert not cached.exists()  # nothing half-trusted left in the cache
    good = dataclasses.replace(served, sha256=presets.file_digest(weights))
    assert presets.fetch(spec, good, data).read_bytes() == weights.read_bytes()


def test_offline_download_says_which_file_to_put_where(tmp_path):
    preset = WeightPreset(name="far", source="http://127.0.0.1:9/far.weights.h5", sha256="a" * 64,
                          data={"task": "classification", "input_shape": [4], "num_classes": 3})
    with pytest.raises(ZooError) as err:
        presets.fetch(zoo.get_spec("mlp"), preset, tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("cannot download mlp.far (") and message.endswith(
        f"put far.weights.h5 from http://127.0.0.1:9/far.weights.h5 (sha256 {'a' * 64}) at "
        f"{tmp_path / 'weights' / 'far.weights.h5'}")


def test_a_plugin_ships_a_preset_in_its_own_package(tmp_path, monkeypatch):
    package = tmp_path / "zoo_tiny_plugin"
    package.mkdir()
    (package / "__init__.py").write_text("")
    trained = zoo.build("mlp", input_shape=(4,), num_classes=3)
    trained.save_weights(package / "iris.weights.h5")
    monkeypatch.syspath_prepend(str(tmp_path))
    preset = WeightPreset(name="iris", source="package:zoo_tiny_plugin/iris.weights.h5",
                          sha256=presets.file_digest(package / "iris.weights.h5"),
                          data={"name": "iris", "task": "classification", "input_shape": [4], "num_classes": 3,
                                "class_names": ["setosa", "versicolor", "virginica"],
                                "preprocessing": {"type": "none"}})
    spec = _with_preset("mlp", preset)
    model = presets.build(spec, "iris")
    for a, b in zip(trained.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ZooError, match="has no weight preset 'irsi'. Did you mean: iris"):
        presets.build(spec, "irsi")


def test_half_a_model_is_refused_with_the_layout_to_use(tmp_path):
    """The issue's case: keras.applications' ResNet50 copied into the zoo's default
    (bias-free) layout loads only its batch norms; that is an error naming the fix."""
    import keras

    path = tmp_path / "keras_resnet50.keras"
    reference = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10)
    reference.save(path)
    with pytest.raises(ZooError, match=r"only 54 of the 107 weight layers of 'resnet50' \(0\.[0-9]%.*\) fit .*conv1_conv \(source "
                                       r"\[\(7, 7, 3, 64\), \(64,\)\], model \[\(7, 7, 3, 64\)\]\).*--set "
                                       r"conv_bias=true.*--partial"):
        zoo.build("resnet50", input_shape=(32, 32, 3), num_classes=10, weights=str(path))
    model = zoo.build("resnet50", input_shape=(32, 32, 3), num_classes=10, conv_bias=True)
    info = transfer.apply(model, transfer.load_source(path), None)
    assert len(info.loaded) == 107 and not info.skipped and not info.replaced
    np.testing.assert_array_equal(model.get_layer("output").get_weights()[0],
                                  reference.get_layer("predictions").get_weights()[0])


def test_training_from_weights_reports_and_records_them(tmp_path, capsys):
    from zoo.cli import main

    path = tmp_path / "mlp.weights.h5"
    zoo.build("mlp", input_shape=(8, 8, 1), num_classes=10).save_weights(path)
    assert main(["train", "mlp", "-d", "digits", "--weights", str(path), "--freeze", "all-but-head",
                 "--epochs", "1", "--limit", "64", "--runs-dir", str(tmp_path / "runs"), "--run-name", "w", "-q"]) == 0
    out = capsys.readouterr().out
    assert f"weights from {path}: 3 of 3 weight layers loaded, 0 skipped, 0 replaced; 2 frozen" in out
    config = json.loads((tmp_path / "runs" / "w" / "config.json").read_text())
    assert config["transfer"]["preset"] == {"file": str(path), "sha256": presets.file_digest(path)}
    assert config["transfer"]["loaded"] == ["dense1", "dense2", "output"] and config["transfer"]["frozen"] == [
        "dense1", "dense2"]
    assert main(["train", "mlp", "-d", "digits", "--freeze", "2", "-q"]) == 2
    assert "--freeze needs --from RUN_DIR or --weights" in capsys.readouterr().err


def test_a_preset_for_raw_rgb_pixels_trains_and_exports_on_raw_pixels(tmp_path):
    """keras.applications-style weights: caffe preprocessing in the input block, so the
    data is loaded unscaled and the export takes the same raw 0-255 pixels."""
    from zoo.export import call_saved_model, export_run
    from zoo.training import train

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (120, 8, 8, 3)).astype("uint8"), np.arange(120) % 3
    np.savez(tmp_path / "rgb.npz", x=x, y=y)
    base = zoo.build("lenet5", input_shape=(8, 8, 3), num_classes=3, preprocess="caffe", c3_table=False)
    base.save_weights(tmp_path / "rgb.weights.h5")
    preset = _file_preset(tmp_path / "rgb.weights.h5", name="rgb",
                          hyperparameters={"preprocess": "caffe", "c3_table": False},
                          data={"task": "classification", "input_shape": [8, 8, 3], "num_classes": 3,
                                "input_kind": "image", "preprocessing": {"type": "none"}})
    _in_cache(tmp_path / "rgb.weights.h5", tmp_path / "data")
    run = train(_with_preset("lenet5", preset), f"npz:{tmp_path / 'rgb.npz'}", weights="rgb", epochs=1,
                data_dir=str(tmp_path / "data"), runs_dir=tmp_path / "runs", verbose=0)
    assert run.data_spec.preprocessing == {"type": "none"}  # raw pixels: the input block does the caffe transform
    assert run.config["transfer"]["preset"]["name"] == "lenet5.rgb" and run.config["hyperparameters"]["preprocess"] == "caffe"
    with pytest.raises(ZooError, match=r"lenet5.rgb needs preprocess='caffe'"):
        train(_with_preset("lenet5", preset), f"npz:{tmp_path / 'rgb.npz'}", weights="rgb", preprocess="none",
              data_dir=str(tmp_path / "data"), runs_dir=tmp_path / "runs", verbose=0)
    version = export_run(run, out=tmp_path / "exported")
    raw = x[:4].astype("float32")
    np.testing.assert_allclose(call_saved_model(version, raw)["probabilities"], run.model(raw).numpy(), atol=1e-5)


# --- keras.applications' ImageNet weights -------------------------------------------------

IMAGENET = {"vgg16": "VGG16", "vgg19": "VGG19", "resnet50": "ResNet50", "resnet101": "ResNet101",
            "resnet152": "ResNet152"}


def _randomised(reference, seed: int = 0) -> None:
    """Every weight and batch-norm statistic of `reference` random (kernels scaled by fan-in)."""
    rng = np.random.default_rng(seed)
    for layer in reference.layers:
        values = []
        for v in layer.weights:
            shape, name = tuple(v.shape), v.name
            if name == "kernel":
                values.append(rng.normal(0, np.sqrt(1.0 / np.prod(shape[:-1])), shape))
            elif name in ("gamma", "moving_variance"):
                values.append(rng.uniform(0.5, 1.5, shape))
            else:
                values.append(rng.normal(0, 0.1, shape))
        if values:
            layer.set_weights([a.astype("float32") for a in values])


@pytest.mark.parametrize("model", [
    "resnet50",
    pytest.param("vgg16", marks=pytest.mark.slow),  # 138M weights: ~1 min, over the fast suite's budget
    pytest.param("vgg19", marks=pytest.mark.slow),
    pytest.param("resnet101", marks=pytest.mark.slow),
    pytest.param("resnet152", marks=pytest.mark.slow)])
def test_imagenet_preset_equals_keras_applications_on_raw_pixels(model, tmp_path):
    """keras.applications' model with random weights, saved in the format of its published
    file and loaded as the preset's file: the zoo's model on raw pixels gives its outputs
    on preprocess_input(pixels), including the head."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    reference = getattr(keras.applications, IMAGENET[model])(weights=None)
    _randomised(reference)
    spec = zoo.get_spec(model)
    published = spec.presets["imagenet"]
    path = tmp_path / published.source.rsplit("/", 1)[-1]
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, reference)
    _in_cache(path, tmp_path / "data")
    spec = dataclasses.replace(spec, presets={"imagenet": dataclasses.replace(published, md5="",
                                                                              sha256=presets.file_digest(path))})
    ours = presets.build(spec, "imagenet", data_dir=tmp_path / "data")
    pixels = np.random.default_rng(1).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    module = keras.applications.resnet if model.startswith("resnet") else getattr(keras.applications, model)
    expected = reference(module.preprocess_input(pixels.copy())).numpy()
    features = "avg_pool" if model.startswith("resnet") else "fc2"
    np.testing.assert_allclose(keras.Model(ours.inputs, ours.get_layer(features).output)(pixels).numpy(),
                               keras.Model(reference.inputs, reference.get_layer(features).output)(
                                   module.preprocess_input(pixels.copy())).numpy(), rtol=1e-5, atol=1e-5)
    assert np.abs(ours(pixels).numpy() - expected).max() <= 1e-5
    assert len(ours.get_layer("output").get_weights()[0]) == len(reference.get_layer("predictions").get_weights()[0])


# --- the presets shipped in the package -----------------------------------------------------

SHIPPED = ["mlp.digits", "lstm.sines"]
SHIPPED_MNIST = ["lenet5.mnist", "autoencoder.mnist"]


def _check_figure(name: str, data_dir) -> None:
    spec, preset = presets.find(name)
    got = presets.evaluate(name, data_dir)[preset.figure.metric]
    # within 0.2 points: of accuracy in percent; of an error figure, 0.2% of it
    tolerance = 0.002 if preset.figure.metric.endswith("accuracy") else 0.002 * preset.figure.value
    assert abs(got - preset.figure.value) <= tolerance, (name, got, preset.figure.value)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_preset_reaches_its_recorded_figure(name, tmp_path):
    _check_figure(name, tmp_path)


@pytest.mark.parametrize("name", SHIPPED_MNIST)
def test_shipped_mnist_preset_reaches_its_recorded_figure(name, mnist_dir):
    _check_figure(name, mnist_dir)


def test_shipped_presets_fit_the_wheel():
    import importlib.resources

    folder = Path(str(importlib.resources.files("zoo.plugins").joinpath("presets")))
    files = sorted(folder.glob("*.weights.h5"))
    assert len(files) == 4 and sum(f.stat().st_size for f in files) <= 3 * 2 ** 20


def test_predict_export_and_attack_a_shipped_preset_without_training(tmp_path, capsys, monkeypatch):
    import sklearn.datasets

    from zoo.cli import main

    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "data"))
    images = sklearn.datasets.load_digits().images[:6].reshape(6, 8, 8, 1).astype("float32")  # raw 0-16 pixels
    np.save(tmp_path / "x.npy", images)
    assert main(["predict", "mlp.digits", "--input", str(tmp_path / "x.npy")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    preset_run = presets.as_run("mlp.digits")
    expected = preset_run.predict(images)
    # the figure is the preset's recorded one, and its metrics say where it comes from
    assert preset_run.metrics["figure_source"].startswith("measured here: zoo train mlp -d digits")
    assert [r["class_ids"] for r in rows] == expected["class_ids"].tolist()
    assert [r["class_name"] for r in rows] == expected["classes"]
    assert main(["export", "mlp.digits", "--out", str(tmp_path / "saved")]) == 0
    metadata = json.loads((tmp_path / "saved" / "mlp" / "1" / "assets.extra" / "metadata.json").read_text())
    assert metadata["model"] == "mlp" and metadata["test_metrics"]["test_accuracy"] == pytest.approx(
        zoo.get_spec("mlp").presets["digits"].figure.value)
    capsys.readouterr()
    assert main(["attack", "mlp.digits", "--eps", "0.05", "--attacks", "fgsm", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fgsm_eps0.05_accuracy"] <= 1.0


def test_predict_a_digit_image_with_lenet5_mnist(mnist_dir, tmp_path, capsys, monkeypatch):
    """The issue's example: `zoo predict lenet5.mnist --input digit.png`, no MNIST needed at run time."""
    from PIL import Image

    from zoo.cli import main
    from zoo.data import load

    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "data"))
    x, y = load("mnist", data_dir=mnist_dir, normalize=False).arrays["test"]
    Image.fromarray(x[0].reshape(28, 28).astype("uint8")).save(tmp_path / "digit.png")
    assert main(["predict", "lenet5.mnist", "--input", str(tmp_path / "digit.png")]) == 0
    assert json.loads(capsys.readouterr().out)["class_name"] == str(y[0])
