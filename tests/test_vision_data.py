"""Image data for the vision families: MNIST from IDX files, CIFAR-10 from its
python batches (a tiny fake set in the real pickle format), TFDS (mocked), image
folders, and resizing / channel conversion."""

from __future__ import annotations

import pickle
import tarfile

import numpy as np
import pytest

from zoo.data import load, sources
from zoo.errors import ZooError

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _cifar_batch(images: np.ndarray, labels: list[int]) -> bytes:
    """A batch as the CIFAR-10 python version stores it: rows of R, G, B planes."""
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    return pickle.dumps({b"batch_label": b"fake", b"labels": labels, b"data": rows,
                         b"filenames": [b"f.png"] * len(labels)}, protocol=2)


def fake_cifar(folder, per_batch: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Five training batches, a test batch and batches.meta; returns batch 1."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    first = None
    for b, name in enumerate([*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]):
        images = rng.integers(0, 256, size=(per_batch, 32, 32, 3), dtype=np.uint8)
        labels = [(b * per_batch + i) % 10 for i in range(per_batch)]  # every class has training examples
        (folder / name).write_bytes(_cifar_batch(images, labels))
        first = first or (images, np.asarray(labels))
    meta = {b"label_names": [n.encode() for n in CIFAR_NAMES], b"num_cases_per_batch": per_batch, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return first


def test_cifar10_python_batches_are_read_in_their_original_format(tmp_path):
    images, labels = fake_cifar(tmp_path / "cifar10" / "cifar-10-batches-py")
    raw = sources.read_cifar10_folder(tmp_path / "cifar10")
    assert raw.x.shape == (30, 32, 32, 3) and raw.test[0].shape == (6, 32, 32, 3)
    np.testing.assert_array_equal(raw.x[:6], images)  # channel planes back to height x width x RGB
    np.testing.assert_array_equal(raw.y[:6], labels)
    assert raw.class_names == tuple(CIFAR_NAMES)
    data = load("cifar10", data_dir=tmp_path)
    assert data.spec.input_shape == (32, 32, 3) and data.spec.input_kind == "image"
    assert data.spec.sizes["test"] == 6 and data.spec.value_range == (0.0, 1.0)


def test_cifar10_archive_and_errors(tmp_path):
    fake_cifar(tmp_path / "src" / "cifar-10-batches-py")
    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    with tarfile.open(tmp_path / "data" / "cifar10" / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    raw = sources.read_cifar10_folder(tmp_path / "data" / "cifar10")
    assert raw.x.shape == (30, 32, 32, 3)
    assert sources.read_cifar10_folder(tmp_path / "nothing") is None
    broken = tmp_path / "broken" / "cifar10"
    fake_cifar(broken)
    (broken / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(ZooError, match="corrupt CIFAR-10 batch"):
        load("cifar10", data_dir=tmp_path / "broken")


@pytest.mark.parametrize("name,shape", [("mnist", (28, 28, 1)), ("fashion_mnist", (28, 28, 1)),
                                        ("cifar10", (32, 32, 3))])
def test_tfds_datasets_load_through_tfds(name, shape, tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=40):
        data = load(name, data_dir=tmp_path)
    assert data.spec.input_shape == shape
    assert data.spec.num_classes == 10 and data.spec.input_kind == "image"
    x, _ = data.arrays["train"]
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0


def test_mnist_from_idx_files(mnist_dir):
    data = load("mnist", data_dir=mnist_dir, limit=500)
    assert data.spec.input_shape == (28, 28, 1)
    assert data.spec.sizes["train"] == 500 and data.spec.sizes["test"] == 10_000
    assert data.spec.class_names == tuple(str(i) for i in range(10))


def test_resize_and_channels_on_the_data_side():
    data = load("digits", resize=32, channels=3)
    assert data.spec.input_shape == (32, 32, 3)
    x, _ = data.arrays["train"]
    np.testing.assert_array_equal(x[..., 0], x[..., 2])  # grey repeated
    assert 0.0 <= x.min() and x.max() <= 1.0
    grey = sources.adapt_images(sources.Raw(np.full((2, 4, 4, 3), 100, np.uint8), np.zeros(2, "int64"),
                                            "classification", "image", ("a",), pixel_max=255.0), channels=1)
    assert grey.x.shape == (2, 4, 4, 1) and grey.x.dtype == np.uint8 and int(grey.x[0, 0, 0, 0]) == 100
    with pytest.raises(ZooError, match="image datasets"):
        load("iris", resize=32)


def test_image_folder_feeds_a_vision_model(tmp_path):
    import keras

    import zoo

    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (tmp_path / "pics" / label).mkdir(parents=True)
        for i in range(3):
            keras.utils.save_img(tmp_path / "pics" / label / f"{i}.png", rng.integers(0, 256, (20, 24, 3)))
    data = load(f"images:{tmp_path / 'pics'}", image_size=(20, 24), split=(0.5, 0.25, 0.25))
    assert data.spec.input_shape == (20, 24, 3) and data.spec.class_names == ("cats", "dogs")
    model = zoo.build("lenet5", input_shape=data.spec.input_shape, num_classes=2, channels=1)
    assert model.get_layer("resize").output.shape[1:] == (32, 32, 1)
    x, _ = data.arrays["train"]
    assert model.predict(x, verbose=0).shape == (len(x), 1)
