"""Presets trained here with the zoo's own recipes and shipped in the package
(plugins/presets/, installed as zoo.plugins package data): the weights file, the
data spec they were trained on (a JSON file beside it) and the test figure measured
when they were trained. tests/test_presets.py checks each still reaches its figure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.spec import Figure, WeightPreset

PRESETS_DIR = Path(__file__).with_name("presets")
LICENSE = "Apache-2.0 (trained by keras-zoo on the dataset named; MNIST is CC BY-SA 3.0)"


def shipped(name: str, file: str, sha256: str, figure: Figure, summary: str,
            hyperparameters: dict[str, Any] | None = None, evaluation: dict[str, Any] | None = None) -> WeightPreset:
    """A preset whose weights are plugins/presets/FILE.weights.h5, trained on the data of FILE.json."""
    data = json.loads((PRESETS_DIR / f"{file}.json").read_text())
    return WeightPreset(name=name, source=f"package:zoo.plugins/presets/{file}.weights.h5", sha256=sha256, data=data,
                        hyperparameters=hyperparameters or {}, license=LICENSE, figure=figure, summary=summary,
                        evaluation=evaluation or {"seed": 0})
