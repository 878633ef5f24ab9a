"""The README's commands, run as written, in order, in a fresh directory.

Every `zoo ...` line of the README's shell blocks runs, except those that need
what a test machine lacks; each skip says why (SKIPS). Slow: about 20 minutes on
2 cores (`python -m pytest -m slow tests/test_readme.py`).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: (pattern in the command, why it does not run here)
SKIPS = (
    ("zoo serve", "a server that runs until stopped (tests/test_serve*.py start it and talk to it)"),
    ("<", "a placeholder to fill in"),
    ("~/data", "needs a data directory with MNIST/CIFAR files"),
    ("--data-dir", "needs a data directory with MNIST/CIFAR files"),
    ("-d mnist", "MNIST is not bundled"), ("-d cifar10", "CIFAR-10 is not bundled"),
    ("-d fashion_mnist", "Fashion-MNIST is not bundled"), ("imdb", "a TFDS download"),
    ("images:photos", "a folder of the user's photos"), ("prices.csv", "the user's own file"),
    ("space.toml", "the user's own file"), ("--distribute", "several GPUs or machines"),
    ("KERAS_BACKEND", "another Keras backend"), ("--precision mixed_float16", "a GPU"),
    ("pip install", "installs packages"), ("--model_config_file", "the user's config file"),
    ("--model_base_path", "the user's model folder"), ("rbf-net", "the example plugin, installed separately"),
    ("mixup-mlp", "the example plugin, installed separately"), ("zoo centres", "the example plugin's command"),
    ("tensorflow_model_server", "TensorFlow Serving itself"),
)


def readme_commands() -> list[str]:
    """`zoo ...` lines of the README's shell blocks (continuations joined, comments dropped)."""
    commands, block, lines = [], None, README.read_text().splitlines()
    joined = ""
    for line in lines:
        if line.startswith("```"):
            block = None if block is not None else line[3:].strip()
            continue
        if block not in ("", "sh", "bash", "shell"):
            continue
        text = joined + line.strip()
        if text.endswith("\\"):
            joined = text[:-1] + " "
            continue
        joined = ""
        text = re.sub(r"\s+#.*$", "", text).strip()
        if text.startswith("zoo "):
            commands.append(text)
    return commands


def skip_reason(command: str) -> str | None:
    return next((why for pattern, why in SKIPS if pattern in command), None)


def test_readme_commands_are_found():
    commands = readme_commands()
    assert len(commands) > 40 and any(c.startswith("zoo train perceptron -d xor") for c in commands)
    assert sum(skip_reason(c) is None for c in commands) > 30  # most of them run


@pytest.mark.slow  # every runnable README command, in order: ~20 min on 2 cores
def test_readme_commands_run(tmp_path):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    ran, failures = [], []
    for command in readme_commands():
        if skip_reason(command):
            continue
        argv = shlex.split(command)[1:]
        if "--run-name" in argv and (tmp_path / "runs" / argv[argv.index("--run-name") + 1] / "metrics.json").exists():
            continue  # the same run, shown again in a later section: trained above
        result = subprocess.run([sys.executable, "-c", "import sys; from zoo.cli import main; sys.exit(main())",
                                 *argv], cwd=tmp_path, capture_output=True, text=True, timeout=1800)
        ran.append(command)
        if result.returncode != 0 or "Traceback" in result.stderr:
            failures.append(f"{command}\n  exit {result.returncode}: {result.stderr.strip()[-600:]}")
    assert not failures, "\n".join(failures)
    assert len(ran) > 30
