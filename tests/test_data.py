"""The data path: built-ins, files, TFDS (mocked), splits and normalisation."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

import zoo
from zoo.data import DEFAULT_SPLIT, load
from zoo.data.sources import BUILTIN
from zoo.errors import ZooError


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_datasets_load_offline(name):
    ds = load(name)
    spec = ds.spec
    n = sum(spec.sizes.values())
    train, val, _ = DEFAULT_SPLIT
    assert spec.sizes["train"] == pytest.approx(train * n, abs=2)
    assert spec.sizes["val"] == pytest.approx(val * n, abs=2)
    x, y = ds.arrays["train"]
    assert x.shape[1:] == spec.input_shape and np.all(np.isfinite(x))
    if spec.task == "classification":
        assert spec.num_classes == len(spec.class_names) == len(np.unique(y))
    else:
        assert spec.num_targets == y.shape[1] == 1


def test_splits_are_seeded():
    a, b, c = load("iris", seed=1), load("iris", seed=1), load("iris", seed=2)
    assert np.array_equal(a.arrays["test"][0], b.arrays["test"][0])
    assert not np.array_equal(a.arrays["test"][0], c.arrays["test"][0])


def test_custom_split_and_bad_split():
    ds = load("wine", split=(0.5, 0.25, 0.25))
    assert ds.spec.sizes["test"] == pytest.approx(0.25 * 178, abs=1)
    with pytest.raises(ZooError, match="three fractions"):
        load("wine", split=(0.5, 0.6, 0.1))


def test_standardisation_is_learned_on_train_only():
    ds = load("breast_cancer")
    xtr, xte = ds.arrays["train"][0], ds.arrays["test"][0]
    assert np.allclose(xtr.mean(axis=0), 0, atol=1e-4) and np.allclose(xtr.std(axis=0), 1, atol=1e-3)
    assert not np.allclose(xte.mean(axis=0), 0, atol=1e-3)
    assert ds.spec.preprocessing["type"] == "standardize"


def test_pixels_are_scaled_and_pipelines_batched():
    ds = load("digits", batch_size=16)
    assert ds.spec.input_shape == (8, 8, 1) and ds.spec.value_range == (0.0, 1.0)
    x, y = next(iter(ds.train))
    assert tuple(x.shape) == (16, 8, 8, 1) and float(np.max(x)) <= 1.0
    xr, yr = next(iter(ds.pipeline("val", targets="inputs")))
    assert np.array_equal(xr.numpy(), yr.numpy())


def test_csv_classification_and_regression(tmp_path):
    path = tmp_path / "flowers.csv"
    rows = ["size,weight,kind"] + [f"{i % 7},{i * 0.5},{'big' if i % 7 > 3 else 'small'}" for i in range(60)]
    path.write_text("\n".join(rows))
    ds = load(f"csv:{path}")
    assert ds.spec.task == "classification" and ds.spec.class_names == ("big", "small")
    assert ds.spec.input_shape == (2,)
    with pytest.raises(ZooError, match="column 'kind': 'small' is not a number"):
        load(f"csv:{path}", target="weight")  # a text column can only be the target
    numeric = tmp_path / "numbers.csv"
    numeric.write_text("\n".join(["a,b,y"] + [f"{i},{i % 5},{i * 0.37:.3f}" for i in range(50)]))
    ds = load(f"csv:{numeric}")
    assert ds.spec.task == "regression" and ds.spec.input_shape == (2,) and ds.spec.num_targets == 1


@pytest.mark.parametrize("content, message", [
    ("a,b\n1,2\n3,x\n", "line 3, column 'a'|not a number"),
    ("a,b\n1,2\n3\n", "line 3 has 1 fields"),
    ("a,b\n1,2\nnan,1\n", "NaN"),
])
def test_bad_csv_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content.replace("3,x", "x,3"))
    with pytest.raises(ZooError, match=message):
        load(f"csv:{path}")


def test_csv_unknown_target_and_missing_file(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n" + "\n".join(f"{i},{i % 2}" for i in range(40)))
    with pytest.raises(ZooError, match="no column 'c'; columns: a, b"):
        load(f"csv:{path}", target="c")
    with pytest.raises(ZooError, match="does not exist"):
        load(f"csv:{tmp_path / 'nope.csv'}")


def test_npz_with_official_test_split(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "a.npz"
    np.savez(path, x_train=rng.integers(0, 255, (100, 6, 6), dtype=np.uint8), y_train=rng.integers(0, 3, 100),
             x_test=rng.integers(0, 255, (20, 6, 6), dtype=np.uint8), y_test=rng.integers(0, 3, 20))
    ds = load(f"npz:{path}")
    assert ds.spec.sizes["test"] == 20 and ds.spec.input_shape == (6, 6, 1) and ds.spec.input_kind == "image"
    corrupt = tmp_path / "c.npz"
    corrupt.write_bytes(b"not a zip")
    with pytest.raises(ZooError, match="cannot read NPZ"):
        load(f"npz:{corrupt}")


def test_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, shade in (("cats", 40), ("dogs", 200)):
        (tmp_path / cls).mkdir()
        for i in range(10):
            pixels = np.clip(rng.normal(shade, 10, (12, 10, 3)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(tmp_path / cls / f"{i}.png")
    ds = load(f"images:{tmp_path}", image_size=(16, 16))
    assert ds.spec.class_names == ("cats", "dogs") and ds.spec.input_shape == (16, 16, 3)
    assert sum(ds.spec.sizes.values()) == 20


def test_unknown_scheme_and_dataset():
    with pytest.raises(ZooError, match="unknown dataset scheme 'cvs'"):
        load("cvs:x.csv")


def test_mnist_from_idx_files_in_data_dir(mnist_dir, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_DIR", str(mnist_dir))
    ds = load("mnist", limit=500)
    assert ds.spec.input_shape == (28, 28, 1) and ds.spec.sizes["test"] == 10_000
    assert ds.spec.sizes["train"] == 500 and ds.spec.num_classes == 10
    assert ds.arrays["test"][0].max() <= 1.0


def test_corrupt_idx_is_a_clear_error(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        with gzip.open(folder / f"{stem}.gz", "wb") as f:
            f.write(b"\x00\x00\x08\x03\x00\x00\x00\x05")  # header promises more than it holds
    with pytest.raises(ZooError, match="corrupt IDX file"):
        load("mnist", data_dir=tmp_path)


def test_tfds_loading_with_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=40):
        ds = load("mnist", data_dir=tmp_path)
    assert ds.spec.input_shape == (28, 28, 1) and ds.spec.num_classes == 10
    assert ds.spec.sizes["test"] == 40 and ds.spec.preprocessing["type"] == "rescale"


def test_tfds_without_download_says_how_to_provide_data(tmp_path):
    with pytest.raises(ZooError, match=r"not in the data directory and TFDS could not get it.*--data-dir or ZOO_DATA_DIR"):
        zoo.load_dataset("cifar10", data_dir=tmp_path, download=False)


# --- bad files and bad data: one clear error before any training --------------------


def write_csv(path, header, rows):
    path.write_text("\n".join([header, *rows]) + "\n")
    return f"csv:{path}"


def image_folder(root, classes, per_class=4, suffix="png"):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in classes:
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / cls / f"{i}.{suffix}")
    return f"images:{root}"


@pytest.mark.parametrize("rows, message", [
    (["1,2,a"], "has 1 example; at least 3 are needed"),
    ([f"{i},{i % 3},cat" for i in range(30)], "at least two classes; found one: 'cat'"),
    ([f"{i},{i % 3},{i * 0.37:.2f}" for i in range(29)] + ["4,1,nan"], "line 31, column 'y' is NaN"),
    ([f"{i},{i % 3},{i * 0.37:.2f}" for i in range(29)] + ["4,1,-inf"], "line 31, column 'y' is infinite"),
    ([f"{i},{i % 3},{i % 2}" for i in range(29)] + ["1e308,1,0"], "column 'a' is 1e\\+308, beyond float32's range"),
])
def test_csv_that_cannot_be_trained_on(tmp_path, rows, message):
    name = write_csv(tmp_path / "d.csv", "a,b,y", rows)
    with pytest.raises(ZooError, match=message):
        load(name)


def test_one_class_is_refused_alike_from_csv_and_images(tmp_path):
    csv_name = write_csv(tmp_path / "d.csv", "a,y", [f"{i},cat" for i in range(12)])
    folder = image_folder(tmp_path / "imgs", ["cat"])
    for name in (csv_name, folder):
        with pytest.raises(ZooError, match="at least two classes"):
            load(name)


@pytest.mark.parametrize("arrays, message", [
    (dict(x=np.zeros((0, 3), "float32"), y=np.zeros(0, "int64")), "holds no examples"),
    (dict(x=np.ones((30, 3)), y=np.where(np.arange(30) == 7, np.nan, np.arange(30) * 0.5)),
     "the target of example 7 is NaN"),
    (dict(x=np.where(np.arange(90).reshape(30, 3) == 40, 1e300, 1.0), y=np.arange(30) % 2),
     r"the input of example 13 \(at \[1\]\) is 1e\+300, beyond float32's range"),
    (dict(x=np.ones((30, 2), "float32"), y=np.arange(30) % 3 * 2), "classes '1', '3' have no examples"),
    (dict(x=np.ones((30, 2), "float32"), y=np.arange(30) % 2 - 1), "class labels must be 0 to"),
    (dict(x=np.ones((30, 2), "float32"), y=np.arange(30) % 2 + 0.5), "must be whole numbers"),
    (dict(x_train=np.ones((30, 2), "float32"), y_train=np.arange(30) % 2, x_test=np.ones((0, 2), "float32"),
          y_test=np.zeros(0, "int64")), r"\(x_test, y_test\) holds no examples"),
])
def test_npz_that_cannot_be_trained_on(tmp_path, arrays, message):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    with pytest.raises(ZooError, match=message):
        load(f"npz:{path}", task="classification" if "0.5" in message or "whole" in message else None)


def test_file_that_is_not_an_npz_says_so(tmp_path):
    text = tmp_path / "t.npz"
    text.write_text("a,b\n1,2\n")
    with pytest.raises(ZooError, match="not an .npz file .*starts with b'a,b\\\\n1,'") as info:
        load(f"npz:{text}")
    assert "pickled" not in str(info.value)
    npy = tmp_path / "a.npz"
    with npy.open("wb") as f:
        np.save(f, np.ones(3))
    with pytest.raises(ZooError, match="is a .npy file"):
        load(f"npz:{npy}")


@pytest.mark.parametrize("bad_file, content, reason", [
    ("cats/broken.jpg", "truncated jpeg", "jpeg::Uncompress failed"),
    ("dogs/notes.png", b"just some text", "Unknown image file format"),
])
def test_undecodable_image_is_named(tmp_path, bad_file, content, reason):
    name = image_folder(tmp_path, ["cats", "dogs"], suffix="jpg")
    if content == "truncated jpeg":
        content = (tmp_path / "cats" / "0.jpg").read_bytes()[:120]
    (tmp_path / bad_file).write_bytes(content)
    with pytest.raises(ZooError, match=f"cannot decode image '.*{bad_file}' \\({reason}.*remove or replace it"):
        load(name, image_size=(8, 8))


def test_empty_class_folder_is_refused(tmp_path):
    name = image_folder(tmp_path, ["cats", "dogs"])
    (tmp_path / "birds").mkdir()
    with pytest.raises(ZooError, match="class 'birds' has no examples \\(an empty class folder\\?\\)"):
        load(name, image_size=(8, 8))


def test_classes_too_small_to_split_are_refused(tmp_path):
    """10,000 classes of one example each would train to accuracy 0 without a word."""
    path = tmp_path / "many.npz"
    np.savez(path, x=np.random.default_rng(0).normal(size=(10_000, 2)).astype("float32"), y=np.arange(10_000))
    with pytest.raises(ZooError, match=r"classes \(.*\) have examples to validate or test on but none to train on; "
                                       r"10,000 classes have fewer than 3 examples"):
        load(f"npz:{path}")
    ok = tmp_path / "ok.npz"  # a rare class that still lands in every split is fine
    np.savez(ok, x=np.ones((60, 2), "float32"), y=np.r_[np.zeros(54, "int64"), np.ones(6, "int64")])
    assert load(f"npz:{ok}").spec.num_classes == 2


def test_limit_that_leaves_classes_out_is_said(capsys):
    ds = load("digits", limit=5)
    assert ds.spec.sizes["train"] == 5
    note = [line for line in capsys.readouterr().err.splitlines() if line.startswith("zoo: note: limit 5 leaves")]
    assert len(note) == 1 and "out of the training split" in note[0]


def test_bad_file_is_one_error_line_from_the_command_line(tmp_path):
    import subprocess
    import sys

    name = write_csv(tmp_path / "d.csv", "a,b,y", ["1,2,3"])
    out = subprocess.run([sys.executable, "-m", "zoo.cli", "train", "mlp", "--dataset", name, "--runs-dir",
                          str(tmp_path / "runs")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert [line for line in out.stderr.splitlines() if line.startswith("zoo")] == [
        f"zoo: error: {name} has 1 example; at least 3 are needed, one each for training, validation and test"]


@pytest.mark.parametrize("value, cause", [(np.nan, "is NaN"), (-np.inf, "is infinite"),
                                          (1e39, "is 1e\\+39, beyond float32's range")])
def test_inputs_to_predict_on_must_be_finite(value, cause):
    from zoo.data.checks import check_inputs

    x = np.ones((3, 2, 2))
    check_inputs(x, "x.npy")
    x[2, 1, 0] = value
    with pytest.raises(ZooError, match=rf"x.npy: the input of example 2 \(at \[1, 0\]\) {cause}.*--allow-nan"):
        check_inputs(x, "x.npy")


def test_a_csv_to_predict_on_is_read_before_float32_can_overflow(tmp_path):
    """1e39 in a CSV is named as beyond float32's range, not as the inf a float32 read makes of it."""
    from zoo.data.checks import check_inputs
    from zoo.serve import _read_csv

    (tmp_path / "x.csv").write_text("a,b\n1.5,2\n3,1e39\n")
    x = _read_csv(tmp_path / "x.csv")
    assert x.tolist() == [[1.5, 2.0], [3.0, 1e39]]
    with pytest.raises(ZooError, match=r"x.csv: the input of example 1 \(at \[1\]\) is 1e\+39, beyond float32's"):
        check_inputs(x, "x.csv")


@pytest.mark.slow  # an export: ~20 s
def test_predict_refuses_non_finite_inputs_unless_allowed(tmp_path, capsys):
    """`zoo predict` on a NaN row would answer a made-up class ("setosa")."""
    from zoo import export
    from zoo.cli import main

    run = zoo.train("mlp", "iris", runs_dir=tmp_path / "runs", epochs=1, units=4, verbose=0)
    version = export.export_run(run, out=tmp_path / "saved")
    (tmp_path / "x.csv").write_text("5.1,3.5,1.4,0.2\n6.0,nan,4.0,1.2\n")
    assert main(["predict", str(version), "--input", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "the input of example 1 (at [1]) is NaN" in err[0] and "--allow-nan" in err[0]
    assert main(["predict", str(version), "--input", str(tmp_path / "x.csv"), "--allow-nan"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
