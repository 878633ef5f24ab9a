"""Every registered model passes the plugin conformance kit (zoo.testing).

A new model is tested by being registered. Per-model options (smaller inputs or
widths) belong in the spec's example_input_shape / example_hyperparameters; the
OVERRIDES table is for what a spec cannot say about itself.
"""

from __future__ import annotations

import importlib.util

import pytest

import zoo
from zoo.testing import conformance_tests

HAVE_EXPORT = importlib.util.find_spec("zoo.export") is not None

#: model name -> conformance options (hyperparameters=..., input_shape=..., task=...)
OVERRIDES: dict[str, dict] = {}

test_conformance = conformance_tests(
    *zoo.list_models(),
    overrides=OVERRIDES,
    # zoo.export arrives from its own branch; until then the export check is skipped here
    # (the kit itself reports "export module not available" - see test_conformance_kit.py)
    marks={"export": pytest.mark.skipif(not HAVE_EXPORT, reason="zoo.export not installed")},
)
