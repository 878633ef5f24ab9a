"""Image-classifier diagnostics written into run directories (zoo.diagnostics)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import zoo
from zoo import diagnostics
from zoo.data import load
from zoo.training import REPORTS


def _run(tmp_path: Path, model, data, task="classification"):
    return SimpleNamespace(dir=tmp_path, config={"task": task}, data_spec=data.spec, model=model, dataset=data)


def test_confusion_matrix_counts():
    m = diagnostics.confusion_matrix(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0]), 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]


def test_report_writes_confusion_misclassified_and_filters(tmp_path):
    assert diagnostics.image_classifier_report in REPORTS
    data = load("digits")
    model = zoo.build("lenet5", input_shape=data.spec.input_shape, num_classes=10)  # untrained: many errors
    diagnostics.image_classifier_report(_run(tmp_path, model, data))
    matrix = json.loads((tmp_path / "confusion_matrix.json").read_text())
    x, y = data.arrays["test"]
    pred = model.predict(x, verbose=0).argmax(-1)
    assert np.asarray(matrix["matrix"]).sum() == len(y)
    assert np.trace(np.asarray(matrix["matrix"])) == int(np.sum(pred == y))
    assert matrix["labels"] == list(data.spec.class_names)
    for name in ("confusion_matrix.png", "misclassified.png", "filters.png"):
        assert (tmp_path / name).stat().st_size > 1000
    name, kernel = diagnostics.first_conv_kernel(model)
    assert name == "c1" and kernel.shape == (5, 5, 1, 6)


def test_misclassified_grid_counts_the_wrong_ones(tmp_path):
    x = np.random.default_rng(0).random((5, 8, 8, 1)).astype("float32")
    wrong = diagnostics.write_misclassified(x, np.array([0, 1, 2, 0, 1]), np.array([0, 2, 2, 1, 1]),
                                            ["a", "b", "c"], tmp_path / "m.png", (0.0, 1.0))
    assert wrong == 2 and (tmp_path / "m.png").exists()


def test_nothing_for_models_that_are_not_image_classifiers(tmp_path):
    data = load("iris")
    model = zoo.build("mlp", input_shape=data.spec.input_shape, num_classes=3)
    diagnostics.image_classifier_report(_run(tmp_path, model, data))
    assert not list(tmp_path.iterdir())
