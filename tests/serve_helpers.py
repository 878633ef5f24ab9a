"""Shared by the zoo serve tests: tiny exported models and the real server in a
subprocess on free loopback ports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

SERVER = "import sys; from zoo.cli import main; sys.exit(main(sys.argv[1:]))"
IRIS_MEAN, IRIS_STD = [5.8, 3.0, 3.7, 1.2], [0.8, 0.4, 1.7, 0.7]


def iris_model(seed: int = 0):
    """A 4 -> 3 softmax classifier with standardised inputs, and its DataSpec."""
    import keras

    from zoo.spec import DataSpec

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    spec = DataSpec(name="iris", task="classification", input_shape=(4,), num_classes=3,
                    class_names=("setosa", "versicolor", "virginica"),
                    preprocessing={"type": "standardize", "mean": IRIS_MEAN, "std": IRIS_STD})
    return model, spec


def regression_model(seed: int = 0):
    import keras

    from zoo.spec import DataSpec

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    return model, DataSpec(name="r", task="regression", input_shape=(2,), num_targets=1, preprocessing={"type": "none"})


def save_typed_model(path: Path) -> None:
    """A SavedModel with int32, bool and string inputs (a multi-input signature) whose
    outputs include `*_bytes` and float32: the JSON typing cases."""
    import tensorflow as tf

    class Typed(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="ids"),
                                      tf.TensorSpec([None], tf.bool, name="flags"),
                                      tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, ids, flags, text):
            return {"doubled": ids * 2, "negated": tf.logical_not(flags), "text": text, "text_bytes": text,
                    "tenth": tf.cast(ids, tf.float32) * 0.1}

    module = Typed()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def iris_rows(n: int = 6, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 4)) * IRIS_STD + IRIS_MEAN).astype("float32")


def http(method: str, url: str, body: bytes | str | dict | None = None, timeout: float = 60,
         headers: dict | None = None) -> tuple[int, dict]:
    """(status, JSON body) of one request; error statuses are returned, not raised."""
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw and raw[:1] in b"{[" else {"raw": raw.decode()}
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"raw": raw.decode(errors="replace")}


class Server:
    """`zoo serve ARGS` in a subprocess; .rest (URL) and .grpc (host:port) once it is ready."""

    def __init__(self, *args: str, timeout: float = 240) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, "serve", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        self.rest = self.grpc = None
        self.lines: list[str] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith("REST API on "):
                self.rest = line.split(" on ", 1)[1].strip()
            elif line.startswith("gRPC API on "):
                self.grpc = line.split(" on ", 1)[1].strip()
            elif line.startswith("serving "):
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # keep the pipe drained
                return
        self.stop()
        raise RuntimeError("server did not start:\n" + "".join(self.lines) + "".join(self.stderr)[-3000:])

    def _drain_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        return self.proc.returncode
