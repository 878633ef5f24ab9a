"""Augmentation with Keras preprocessing layers: chosen per run, training split only."""

from __future__ import annotations

import numpy as np
import pytest

from zoo import augment
from zoo.cli import main
from zoo.data import load
from zoo.errors import ZooError


def test_parse_names_and_strengths():
    assert augment.parse("flip, translation=0.2") == [("flip", "horizontal"), ("translation", 0.2)]
    assert augment.parse(["rotation", "zoom=0.3", "contrast"]) == [("rotation", 0.05), ("zoom", 0.3), ("contrast", 0.2)]
    assert augment.parse("flip=vertical") == [("flip", "vertical")]
    assert augment.parse(None) == [] and augment.parse("") == []
    with pytest.raises(ZooError, match="Did you mean: rotation"):
        augment.parse("rotaton")
    with pytest.raises(ZooError, match="strength"):
        augment.parse("zoom=2")
    with pytest.raises(ZooError, match="number"):
        augment.parse("zoom=big")


def test_augmentation_changes_training_images_repeatably():
    from zoo.training import set_seed

    data = load("digits", batch_size=8)

    def first_batch(seed):
        set_seed(0)
        ds = augment.apply(data.pipeline("train", shuffle=False), "translation,rotation,zoom,contrast", data.spec, seed)
        return next(iter(ds))[0].numpy()

    x = data.arrays["train"][0][:8]
    a, again, other = first_batch(0), first_batch(0), first_batch(7)
    assert a.shape == x.shape
    assert np.abs(a - x).max() > 0.1  # the images moved
    np.testing.assert_array_equal(a, again)  # same seed, same augmentation
    assert not np.allclose(a, other)
    assert 0.0 <= a.min() and a.max() <= 1.0 + 1e-6  # contrast keeps the [0, 1] range
    flipped = augment.layers("flip", data.spec)(x, training=True).numpy()
    for f, o in zip(flipped, x):  # each image as it is or mirrored left-right
        assert np.allclose(f, o) or np.allclose(f, o[:, ::-1])
    inference = augment.layers("translation,rotation", data.spec)(x, training=False).numpy()
    np.testing.assert_array_equal(inference, x)  # outside training the layers are the identity


def test_augmentation_needs_images():
    with pytest.raises(ZooError, match="images"):
        augment.layers("flip", load("iris").spec)


def test_train_applies_augmentation_to_the_training_split_only(runs_dir):
    from zoo.training import train

    data = load("digits", limit=200)
    run = train("lenet5_modern", data, runs_dir=runs_dir, verbose=0, epochs=1, augment=["translation=0.2", "flip"])
    assert run.config["augment"] == ["translation=0.2", "flip=horizontal"]
    assert run.metrics["status"] == "completed"
    # evaluation saw the test images as they are: re-evaluating the saved model agrees
    x, y = data.arrays["test"]
    accuracy = float(np.mean(run.model.predict(x, verbose=0).argmax(-1) == y))
    assert accuracy == pytest.approx(run.metrics["test_accuracy"], abs=1e-6)


def test_cli_rejects_unknown_augmentation_and_freeze_without_from(capsys, tmp_path):
    assert main(["train", "lenet5", "--augment", "blur", "--epochs", "1", "--runs-dir", str(tmp_path)]) == 2
    assert "unknown augmentation 'blur'" in capsys.readouterr().err
    assert main(["train", "lenet5", "--freeze", "2", "--runs-dir", str(tmp_path)]) == 2
    assert "--from" in capsys.readouterr().err
