"""The one in-process servable API behind `zoo serve`'s REST and gRPC layers:
model status and metadata, predict, classify, regress, config reloads and
warm-up, each checking its inputs once, so both protocols answer the same way.

Requests name a model as TensorFlow Serving's ModelSpec does (name, version or
label, signature); inputs and outputs are NumPy arrays (the protocol layers turn
JSON or TensorProtos into arrays and back). A model runs through the batcher
when batching is on, else directly, with at most `max_concurrent_runs` signature
calls at once (more only make TensorFlow's thread pools fight).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zoo.serve_repository import (CLASSIFY_METHOD, REGRESS_METHOD, Repository, Servable, Signature,
                                  read_warmup_logs)
from zoo.serve_status import Code, ServingError, batch_limit

DEFAULT_SIGNATURE = "serving_default"
#: signature used by classify / regress when the request names none and serving_default is not one
TASK_SIGNATURES = {"classify": "classification", "regress": "regression"}
METHODS = {"classify": CLASSIFY_METHOD, "regress": REGRESS_METHOD}


@dataclass(frozen=True)
class ModelSpec:
    """What a request names: TensorFlow Serving's ModelSpec."""

    name: str
    version: int | None = None
    label: str | None = None
    signature: str = ""


@dataclass
class Result:
    servable: Servable
    signature: str
    outputs: dict[str, np.ndarray] = field(default_factory=dict)


def batch_size(arrays: Mapping[str, np.ndarray]) -> int:
    first = next(iter(arrays.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else 1


class ServingAPI:
    """Status, metadata and inference over a Repository (see the module docstring)."""

    def __init__(self, repository: Repository, *, batcher=None, metrics=None, max_batch: int = 0,
                 max_concurrent_runs: int | None = None, timeout: float | None = None) -> None:
        self.repository = repository
        self.batcher = batcher
        self.metrics = metrics
        self.max_batch = max_batch
        self.timeout = timeout
        self._runs = threading.BoundedSemaphore(max_concurrent_runs or os.cpu_count() or 2)

    # -- observing requests (one place for both protocols' metrics)

    @contextlib.contextmanager
    def observe(self, entrypoint: str, api: str, model: str = "") -> Iterator[dict[str, Any]]:
        """Record a request's status and latency: `with api.observe("REST", "predict", name) as call:`
        (set call["version"] once known)."""
        call = {"model": model, "version": "", "examples": 0}
        started = time.perf_counter()
        code = Code.OK
        try:
            yield call
        except ServingError as exc:
            code = exc.code
            raise
        except Exception:
            code = Code.INTERNAL
            raise
        finally:
            if self.metrics is not None:
                self.metrics.request(call["model"], call["version"], api, entrypoint, code.name,
                                     time.perf_counter() - started, call["examples"])

    # -- status and metadata

    def status(self, name: str, version: int | None = None, label: str | None = None) -> list[Servable]:
        if label is not None:
            version = self.repository.label_version(name, label)
        try:
            versions = self.repository.versions(name)
        except ServingError:
            self.repository.refresh_if_stale()
            versions = self.repository.versions(name)
        if version is None:
            return [s for _, s in sorted(versions.items(), reverse=True)]
        if version not in versions:
            raise ServingError(Code.NOT_FOUND, f"Could not find version {version} of model {name}")
        return [versions[version]]

    def servable(self, spec: ModelSpec) -> Servable:
        """The AVAILABLE version a request names (one re-scan of the disk on a miss)."""
        if not spec.name:
            raise ServingError(Code.INVALID_ARGUMENT, "ModelSpec has no name specified.")
        try:
            return self.repository.resolve(spec.name, spec.version, spec.label)
        except ServingError as exc:
            if exc.code != Code.NOT_FOUND:
                raise
            self.repository.refresh_if_stale()  # a version written since the last poll
            return self.repository.resolve(spec.name, spec.version, spec.label)

    def signature(self, servable: Servable, name: str, code: Code = Code.INVALID_ARGUMENT) -> Signature:
        """A predict signature by name ('' is serving_default); see find_signature."""
        return find_signature(servable.signatures, name, code)

    # -- inference

    def predict(self, spec: ModelSpec, inputs: Mapping[str, np.ndarray], output_filter: Sequence[str] = (),
                deadline: float | None = None, call: dict | None = None) -> Result:
        servable = self.servable(spec)
        if call is not None:
            call["version"] = str(servable.version)
        signature = self.signature(servable, spec.signature, Code.FAILED_PRECONDITION)
        outputs = self.run(servable, signature, inputs, deadline, call)
        if output_filter:
            unknown = [k for k in output_filter if k not in outputs]
            if unknown:
                raise ServingError(Code.INVALID_ARGUMENT, f"output tensor alias not found in signature: {unknown[0]} "
                                                          f"Outputs expected to be in the set {{{','.join(sorted(outputs))}}}.")
            outputs = {k: outputs[k] for k in output_filter}
        return Result(servable, signature.name, outputs)

    def classify(self, spec: ModelSpec, examples: Sequence[bytes], deadline: float | None = None,
                 call: dict | None = None) -> Result:
        """Outputs "classes" (labels) and/or "scores", each (examples, classes)."""
        servable, signature, outputs = self._examples("classify", spec, examples, deadline, call)
        n = len(examples)
        for key, dtype in (("classes", "DT_STRING"), ("scores", "DT_FLOAT")):
            if key in outputs:
                value = outputs[key]
                if value.ndim != 2:
                    raise ServingError(Code.INVALID_ARGUMENT, f"Expected Tensor shape: [batch_size num_classes] but "
                                                              f"got {list(value.shape)}")
                if value.shape[0] != n:
                    raise ServingError(Code.INVALID_ARGUMENT, f"Expected {key} output batch size of {n}. "
                                                              f"Got: {value.shape[0]}")
        return Result(servable, signature.name, {k: outputs[k] for k in ("classes", "scores") if k in outputs})

    def regress(self, spec: ModelSpec, examples: Sequence[bytes], deadline: float | None = None,
                call: dict | None = None) -> Result:
        """Output "outputs": one value per example."""
        servable, signature, outputs = self._examples("regress", spec, examples, deadline, call)
        values = outputs["outputs"]
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1 or values.shape[0] != len(examples):
            raise ServingError(Code.INVALID_ARGUMENT, f"Expected output Tensor shape to be either [batch_size] or "
                                                      f"[batch_size, 1] but got {list(outputs['outputs'].shape)}")
        return Result(servable, signature.name, {"outputs": values})

    def _examples(self, method: str, spec: ModelSpec, examples: Sequence[bytes], deadline, call):
        servable = self.servable(spec)
        if call is not None:
            call["version"] = str(servable.version)
        signature = self.task_signature(servable, method, spec.signature)
        if not examples:
            raise ServingError(Code.INVALID_ARGUMENT, "Input is empty.")
        (input_name,) = signature.inputs
        arrays = {input_name: np.array(list(examples), dtype=object)}
        return servable, signature, self.run(servable, signature, arrays, deadline, call)

    def task_signature(self, servable: Servable, method: str, name: str) -> Signature:
        """The classify / regress signature a request names (see TASK_SIGNATURES for the default)."""
        if not name:
            default = servable.signatures.get(DEFAULT_SIGNATURE)
            name = DEFAULT_SIGNATURE if default is not None and _is_task(default, method) else TASK_SIGNATURES[method]
        signature = servable.signatures.get(name)
        if signature is None:
            raise ServingError(Code.INVALID_ARGUMENT, f"No signature was found with the name: {name}")
        if not _is_task(signature, method):
            raise ServingError(Code.INVALID_ARGUMENT, f"Expected {'classification' if method == 'classify' else 'regression'}"
                                                      f" signature method_name to be {METHODS[method]}. "
                                                      f"Was: {signature.method}")
        return signature

    def run(self, servable: Servable, signature: Signature, inputs: Mapping[str, np.ndarray],
            deadline: float | None = None, call: dict | None = None) -> dict[str, np.ndarray]:
        """Check the inputs against the signature, then call it (batched or not)."""
        arrays = self.validate(signature, inputs)
        n = batch_size(arrays)
        if call is not None:
            call["examples"] = n
        deadline = deadline if deadline is not None else (time.monotonic() + self.timeout if self.timeout else None)
        if self.batcher is not None and signature.batchable:
            return self.batcher.run(servable, signature, arrays, deadline)
        if not self._runs.acquire(timeout=_remaining(deadline)):
            raise ServingError(Code.DEADLINE_EXCEEDED, "Deadline exceeded while waiting to run the model")
        try:
            return servable.run(signature.name, arrays)
        finally:
            self._runs.release()

    def validate(self, signature: Signature, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Names, dtypes, shapes, batch sizes and finiteness of a request's inputs."""
        if set(inputs) != set(signature.inputs):
            sent, want = set(inputs), set(signature.inputs)
            raise ServingError(Code.INVALID_ARGUMENT, f"input size does not match signature: {len(sent)}!={len(want)} "
                                                      f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(want))}}}). "
                                                      f"Sent extra: {{{','.join(sorted(sent - want))}}}. Missing but "
                                                      f"required: {{{','.join(sorted(want - sent))}}}.")
        arrays = {}
        for name, info in signature.inputs.items():
            arr = np.asarray(inputs[name])
            if arr.dtype != info.dtype and not (info.dtype == object and arr.dtype.kind in "OS"):
                raise ServingError(Code.INVALID_ARGUMENT, f"Expects arg[{name}] to be {info.tf_name} but "
                                                          f"{_dtype_name(arr.dtype)} is provided")
            _check_shape(arr, name, info)
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                where = [int(i) for i in np.argwhere(~np.isfinite(arr))[0]]
                raise ServingError(Code.INVALID_ARGUMENT, f"input {name!r} holds a non-finite value at index {where}: "
                                                          f"NaN, Infinity and numbers beyond the {info.tf_name} range "
                                                          "are refused (the model's answer would be meaningless)")
            arrays[name] = arr
        sizes = {a.shape[0] for a in arrays.values() if a.ndim}
        if signature.batchable and len(sizes) > 1:
            raise ServingError(Code.INVALID_ARGUMENT, f"inputs have different batch sizes {sorted(sizes)}")
        batch_limit(max(sizes, default=0), self.max_batch)
        return arrays

    # -- configuration and warm-up

    def reload_config(self, config, base_dir) -> None:
        """Serve exactly the models of a ModelServerConfig (HandleReloadConfigRequest):
        waits for their loads; FAILED_PRECONDITION when a label names a version
        that is not available (the label is not assigned, the rest is applied)."""
        from zoo.serve_repository import config_sources

        problems = self.repository.set_sources(config_sources(config, base_dir))
        if problems:
            raise ServingError(Code.FAILED_PRECONDITION, problems[0])

    def warmup(self, servable: Servable) -> None:
        """Replay a version's assets.extra/tf_serving_warmup_requests before it is AVAILABLE."""
        from zoo import serve_proto

        for log in read_warmup_logs(servable):
            kind = log.WhichOneof("log_type")
            if kind == "predict_log":
                request = log.predict_log.request
                signature = self.signature(servable, request.model_spec.signature_name, Code.FAILED_PRECONDITION)
                self.run(servable, signature, serve_proto.request_arrays(request.inputs))
            elif kind in ("classify_log", "regress_log"):
                method = "classify" if kind == "classify_log" else "regress"
                request = getattr(log, kind).request
                signature = self.task_signature(servable, method, request.model_spec.signature_name)
                examples = serve_proto.examples(request.input)
                (name,) = signature.inputs
                self.run(servable, signature, {name: np.array(examples, dtype=object)})
            else:
                raise ServingError(Code.UNIMPLEMENTED, f"Unsupported log_type for warmup: {kind}")


def find_signature(signatures: Mapping[str, Any], name: str, code: Code = Code.INVALID_ARGUMENT) -> Any:
    """signatures[name or serving_default]; `code` when missing (REST says INVALID_ARGUMENT,
    gRPC's Predict FAILED_PRECONDITION, as TensorFlow Serving)."""
    name = name or DEFAULT_SIGNATURE
    if name not in signatures or name.startswith("__"):
        message = (f'Serving signature name: "{name}" not found in signature def' if code == Code.INVALID_ARGUMENT
                   else f'Serving signature key "{name}" not found.')
        raise ServingError(code, message)
    return signatures[name]


def _is_task(signature: Signature, method: str) -> bool:
    """A classify / regress signature: by its method name, or (TensorFlow Serving without
    the method-name check) one string input named "inputs" and the task's outputs."""
    if signature.method == METHODS[method]:
        return True
    outputs = {"classify": {"classes", "scores"}, "regress": {"outputs"}}[method]
    return (list(signature.inputs) == ["inputs"] and signature.inputs["inputs"].dtype == object
            and bool(set(signature.outputs) & outputs) and set(signature.outputs) <= outputs)


def _check_shape(arr: np.ndarray, name: str, info) -> None:
    if info.shape is None:
        return
    if arr.ndim != len(info.shape) or any(d is not None and d != a for d, a in zip(info.shape, arr.shape)):
        want = "[" + ", ".join("-1" if d is None else str(d) for d in info.shape) + "]"
        raise ServingError(Code.INVALID_ARGUMENT, f"input {name!r} has shape {list(arr.shape)}; the signature "
                                                  f"takes {want} (-1: any batch size)")


def _dtype_name(dtype: np.dtype) -> str:
    """TensorFlow's name for a NumPy dtype, as its error messages write it."""
    if dtype.kind == "f":
        return {2: "half", 4: "float", 8: "double"}.get(dtype.itemsize, str(dtype))
    return {"O": "string", "S": "string", "U": "string", "b": "bool"}.get(dtype.kind, str(dtype))


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
