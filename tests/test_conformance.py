"""Every registered model passes the plugin conformance kit (zoo.testing).

A new model is tested by being registered. Per-model options (smaller inputs or
widths) belong in the spec's example_input_shape / example_hyperparameters; the
OVERRIDES table is for what a spec cannot say about itself, e.g.
    "resnet152": {"marks": {"build_default": pytest.mark.slow}}
"""

from __future__ import annotations


import zoo
from zoo.testing import conformance_tests

#: model name -> conformance options (hyperparameters=..., input_shape=..., task=..., checks=..., marks=...)
OVERRIDES: dict[str, dict] = {}

test_conformance = conformance_tests(*zoo.list_models(), overrides=OVERRIDES)
