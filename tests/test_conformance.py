"""Every registered model passes the plugin conformance kit (zoo.testing).

A new model is tested by being registered. Per-model options (smaller inputs or
widths) belong in the spec's example_input_shape / example_hyperparameters; the
OVERRIDES table is for what a spec cannot say about itself, e.g.
    "resnet152": {"marks": {"build_default": pytest.mark.slow}}
"""

from __future__ import annotations

import pytest

import zoo
from zoo.testing import conformance_tests

_HEAVY = {"marks": {check: pytest.mark.slow for check in ("train_step", "export")}}
#: model name -> conformance options (hyperparameters=..., input_shape=..., task=..., checks=..., marks=...).
#: The deepest ResNets repeat resnet50's / resnet56's code at 2-3x the cost: their training
#: step and export run with `-m slow`.
OVERRIDES: dict[str, dict] = {"resnet101": _HEAVY, "resnet152": _HEAVY, "resnet110": _HEAVY}
#: the fresh-process reload (a Python and TensorFlow start-up each, ~7 s) runs in the fast suite for
#: two families with Keras classes of their own (the RBM's model, LeNet-5's layers); the rest with `-m slow`
for _name in ("rbm", "lenet5"):
    OVERRIDES.setdefault(_name, {}).setdefault("marks", {})["reload"] = ()

test_conformance = conformance_tests(*zoo.list_models(), overrides=OVERRIDES, marks={"reload": pytest.mark.slow})
