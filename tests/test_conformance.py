"""Every registered model passes the plugin conformance kit (zoo.testing).

A new model is tested by being registered. Per-model options (smaller inputs or
widths) belong in the spec's example_input_shape / example_hyperparameters; the
OVERRIDES table is for what a spec cannot say about itself, e.g.
    "resnet152": {"marks": {"build_default": pytest.mark.slow}}
"""

from __future__ import annotations

import pytest

import zoo
from zoo.testing import ConformanceError, conformance_tests

# Found by this suite: the deep ResNets' default depth is not among their search space's
# depth choices, so keras_tuner refuses the space (`zoo tune resnet101` fails the same way).
# Strict: once plugins/resnet.py is fixed these XPASS and fail, so remove the entries then.
_DEPTH_NOT_IN_SPACE = pytest.mark.xfail(strict=True, raises=ConformanceError,
                                        reason="default depth outside the depth Choice of its search space")
_SPACE_BUG = {"marks": {c: _DEPTH_NOT_IN_SPACE for c in ("spec", "search_space", "build_sampled")}}

# Found by this suite: an RBM's output is its hidden units (units wide), not a
# reconstruction of its input; it passes at the defaults only because units=64 equals the
# 8x8 test input. Strict xfail until the RBM spec and the kit agree on the contract.
_RBM_OUTPUT = {"marks": {"build_sampled": pytest.mark.xfail(
    strict=True, raises=ConformanceError, reason="RBM output is the hidden units, not a reconstruction")}}

#: model name -> conformance options (hyperparameters=..., input_shape=..., task=..., checks=..., marks=...)
OVERRIDES: dict[str, dict] = {"resnet101": _SPACE_BUG, "resnet110": _SPACE_BUG, "resnet152": _SPACE_BUG,
                              "rbm": _RBM_OUTPUT, "rbm-pcd": _RBM_OUTPUT, "grbm": _RBM_OUTPUT}

test_conformance = conformance_tests(*zoo.list_models(), overrides=OVERRIDES)
