"""Serve exported models over HTTP with TensorFlow Serving's REST API, and
predict offline from a SavedModel.

    zoo serve saved_models --port 8501
    curl -d '{"instances": [[5.1, 3.5, 1.4, 0.2]]}' localhost:8501/v1/models/mlp:predict

Endpoints (as TensorFlow Serving's; a client written for it works unchanged):

    GET  /v1/models/NAME[/versions/N | /labels/L]             version status
    GET  /v1/models/NAME[/versions/N | /labels/L]/metadata    signatures
    POST /v1/models/NAME[/versions/N | /labels/L]:predict     row ("instances") or
                                                               columnar ("inputs") format

Errors are `{"error": "..."}` with TensorFlow Serving's status codes: 400 for a
bad request (malformed JSON, wrong shape or dtype, unknown signature), 404 for an
unknown model, version or label, 413 for a body over the size limit, 500 for a
failure inside the model.

The root holds `NAME/VERSION/` folders (integer versions; anything else, such
as the `.N.tmp-*` folders an export writes before renaming, is ignored). The
server serves every version it can load, the highest one by default, and polls
the root: a new version is picked up and a removed one dropped without restart;
a version that fails to load is reported in its status and does not affect the
others (it is retried when its files change; an overwritten version is reloaded). Version labels come from an
optional `NAME/labels.json`, e.g. `{"stable": 1, "canary": 2}`.

TensorFlow is imported only inside functions: the CLI imports this module at
start-up to register `zoo serve` and `zoo predict`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.cli import command
from zoo.errors import ZooError

DEFAULT_SIGNATURE = "serving_default"
LABELS_FILE = "labels.json"
MAX_BODY = 16 * 1024 * 1024

# TensorFlow Serving maps its status codes to HTTP like this (http_server.cc)
INVALID_ARGUMENT, NOT_FOUND, TOO_LARGE, INTERNAL, UNAVAILABLE = 400, 404, 413, 500, 503

_VERSION = r"(?:/versions/(?P<version>-?\d+)|/labels/(?P<label>[^/:]+))?"
PREDICT = re.compile(rf"/v1/models/(?P<name>[^/:]+){_VERSION}:(?P<verb>[A-Za-z]+)", re.I)
METADATA = re.compile(rf"/v1/models/(?P<name>[^/:]+){_VERSION}/metadata", re.I)
STATUS = re.compile(rf"/v1/models(?:/(?P<name>[^/:]+))?{_VERSION}/?", re.I)


class ServingError(Exception):
    """An error answered as {"error": message} with an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# --- one loaded version ----------------------------------------------------------------


@dataclass
class Signature:
    fn: Any
    inputs: dict[str, Any]  # name -> tf.TensorSpec
    outputs: list[str]


@dataclass
class Servable:
    """One version of one model: loaded, failed, or loading."""

    name: str
    version: int
    path: Path
    state: str = "LOADING"
    error: str = ""
    stamp: tuple[int, int] = (0, 0)
    loaded: Any = None
    signatures: dict[str, Signature] = field(default_factory=dict)
    signature_defs: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def status(self) -> dict[str, Any]:
        return {"version": str(self.version), "state": self.state,
                "status": {"error_code": "OK" if not self.error else "UNKNOWN", "error_message": self.error}}

    def load(self) -> "Servable":
        """Load the SavedModel and read its signature definitions."""
        import tensorflow as tf
        from google.protobuf.json_format import MessageToDict
        from tensorflow.core.protobuf import saved_model_pb2

        try:
            proto = saved_model_pb2.SavedModel()
            proto.ParseFromString((self.path / "saved_model.pb").read_bytes())
            self.signature_defs = {
                k: _message_to_dict(MessageToDict, v) for k, v in proto.meta_graphs[0].signature_def.items()}
            self.loaded = tf.saved_model.load(str(self.path))
            for key, fn in self.loaded.signatures.items():
                self.signatures[key] = Signature(fn, dict(fn.structured_input_signature[1]),
                                                 sorted(fn.structured_outputs))
            meta = self.path / "assets.extra" / "metadata.json"
            self.metadata = json.loads(meta.read_text()) if meta.exists() else {}
            self.state, self.error = "AVAILABLE", ""
        except Exception as exc:  # a broken version must not take the server down
            self.state, self.error, self.loaded = "END", f"{type(exc).__name__}: {exc}"[:2000], None
            self.signatures = {}
        return self

    def run(self, signature: str, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Call a signature on already-validated arrays."""
        import tensorflow as tf

        sig = self.signatures[signature]
        try:
            out = sig.fn(**{k: tf.constant(v, dtype=sig.inputs[k].dtype) for k, v in arrays.items()})
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:
            raise ServingError(INVALID_ARGUMENT, _short(exc)) from None
        return {k: v.numpy() for k, v in out.items()}


def _message_to_dict(to_dict: Callable, message) -> dict[str, Any]:
    try:
        return to_dict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    except TypeError:  # protobuf < 5.26
        return to_dict(message, preserving_proto_field_name=True, including_default_value_fields=True)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:500] if text else type(exc).__name__


# --- the repository of models -------------------------------------------------------------


def version_dirs(model_dir: Path) -> dict[int, Path]:
    """Integer version folders that hold a saved_model.pb."""
    out = {}
    try:
        children = list(model_dir.iterdir())
    except OSError:
        return out
    for child in children:
        if child.name.isdigit() and (child / "saved_model.pb").is_file():
            out[int(child.name)] = child
    return out


def _stamp(path: Path) -> tuple[int, int]:
    """Identity of a version's saved_model.pb: a re-export (--overwrite) changes it."""
    try:
        st = (path / "saved_model.pb").stat()
    except OSError:
        return (0, 0)
    return (st.st_ino, st.st_mtime_ns)


class Repository:
    """The models under a root folder, kept in step with it by polling."""

    def __init__(self, root: str | os.PathLike, poll_seconds: float = 1.0) -> None:
        self.root = Path(root)
        self.poll_seconds = poll_seconds
        self.models: dict[str, dict[int, Servable]] = {}
        self.labels: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refreshed = 0.0

    def refresh_if_stale(self, seconds: float = 0.25) -> None:
        """Refresh unless that was done in the last `seconds` (lookup misses call this)."""
        if time.monotonic() - self._refreshed > seconds:
            self.refresh()

    def refresh(self) -> None:
        """Load new or changed versions, drop removed ones, re-read labels."""
        with self._refresh_lock:
            found: dict[str, dict[int, Path]] = {}
            labels: dict[str, dict[str, int]] = {}
            if self.root.is_dir():
                for model_dir in sorted(self.root.iterdir()):
                    if model_dir.is_dir() and not model_dir.name.startswith("."):
                        found[model_dir.name] = version_dirs(model_dir)
                        labels[model_dir.name] = _read_labels(model_dir / LABELS_FILE)
            for name, versions in found.items():
                current = self.models.get(name, {})
                for version, path in sorted(versions.items()):
                    old = current.get(version)
                    if old is None or _stamp(path) != old.stamp:  # new, re-exported, or repaired
                        servable = Servable(name, version, path, stamp=_stamp(path)).load()
                        with self._lock:
                            self.models.setdefault(name, {})[version] = servable
            with self._lock:
                for name in list(self.models):
                    keep = found.get(name, {})
                    self.models[name] = {v: s for v, s in self.models[name].items() if v in keep}
                    if not self.models[name]:
                        del self.models[name]
                self.labels = labels
            self._refreshed = time.monotonic()

    def start(self) -> None:
        def poll() -> None:
            while not self._stop.wait(self.poll_seconds):
                try:
                    self.refresh()
                except Exception as exc:  # keep polling whatever happens on disk
                    print(f"zoo serve: refresh failed: {exc}", file=sys.stderr)

        self._thread = threading.Thread(target=poll, name="zoo-serve-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def versions(self, name: str) -> dict[int, Servable]:
        with self._lock:
            versions = dict(self.models.get(name, {}))
        if not versions:
            raise ServingError(NOT_FOUND, f"Could not find any versions of model {name}")
        return versions

    def resolve(self, name: str, version: str | None = None, label: str | None = None) -> Servable:
        """The servable a request names: a version, a label, or the highest available."""
        with self._lock:
            versions = dict(self.models.get(name, {}))
            labels = dict(self.labels.get(name, {}))
        if label is not None:
            if label not in labels:
                raise ServingError(NOT_FOUND, f"Unrecognized servable version label: {label}")
            version = str(labels[label])
        if version is not None:
            servable = versions.get(int(version))
            if servable is None or servable.state != "AVAILABLE":
                raise ServingError(NOT_FOUND, f"Servable not found for request: Specific({name}, {version})")
            return servable
        available = [s for v, s in sorted(versions.items()) if s.state == "AVAILABLE"]
        if not available:
            raise ServingError(NOT_FOUND, f"Servable not found for request: Latest({name})")
        return available[-1]


def _read_labels(path: Path) -> dict[str, int]:
    try:
        data = json.loads(path.read_text())
        return {str(k): int(v) for k, v in data.items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        print(f"zoo serve: ignoring {path}: {exc}", file=sys.stderr)
        return {}


# --- request and response formats ------------------------------------------------------------


def _np_dtype(spec) -> np.dtype:
    return np.dtype(spec.dtype.as_numpy_dtype)


def _to_array(value: Any, name: str, spec) -> np.ndarray:
    """A JSON value as an array of the input's dtype and shape, or a 400."""
    dtype = _np_dtype(spec)
    if dtype.kind in "SUO":
        value = _decode_b64(value)
        arr = np.asarray(value, dtype=object)
    else:
        try:
            arr = np.asarray(value)
        except ValueError as exc:
            raise ServingError(INVALID_ARGUMENT, f"input {name!r}: values must form a rectangular array: {_short(exc)}")
        if arr.dtype == object:
            raise ServingError(INVALID_ARGUMENT, f"input {name!r}: values must form a rectangular array of numbers")
        if arr.dtype.kind not in "biuf":
            got = "strings" if arr.dtype.kind in "SU" else str(arr.dtype)
            raise ServingError(INVALID_ARGUMENT, f"input {name!r} expects {spec.dtype.name} values, got {got}")
        if dtype.kind in "iu" and arr.dtype.kind == "f" and not np.all(np.mod(arr, 1) == 0):
            raise ServingError(INVALID_ARGUMENT, f"input {name!r} expects integers ({spec.dtype.name})")
        arr = arr.astype(dtype)
    want = spec.shape
    if want.rank is not None:
        dims = want.as_list()
        if arr.ndim != len(dims) or any(d is not None and d != a for d, a in zip(dims, arr.shape)):
            shape = "[" + ", ".join("-1" if d is None else str(d) for d in dims) + "]"
            raise ServingError(INVALID_ARGUMENT, f"input {name!r} has shape {list(arr.shape)}; the signature "
                                                 f"takes {shape} (-1: any batch size)")
    return arr


def _decode_b64(value: Any) -> Any:
    import base64

    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode_b64(v) for v in value]
    return value


def parse_predict_request(body: Any, signature: Signature) -> tuple[dict[str, np.ndarray], str]:
    """Arrays for each signature input and the format ('row' or 'columnar')."""
    if not isinstance(body, dict):
        raise ServingError(INVALID_ARGUMENT, "the request body must be a JSON object")
    has_rows, has_cols = "instances" in body, "inputs" in body
    if has_rows and has_cols:
        raise ServingError(INVALID_ARGUMENT, "Not both 'inputs' and 'instances' keys: use one format")
    if not (has_rows or has_cols):
        raise ServingError(INVALID_ARGUMENT, "Missing 'inputs' or 'instances' key")
    names = list(signature.inputs)
    if has_rows:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise ServingError(INVALID_ARGUMENT, "'instances' must be a non-empty list")
        if all(isinstance(r, dict) for r in rows) and not (len(names) == 1 and _is_b64(rows[0])):
            for i, r in enumerate(rows):
                if set(r) != set(names):
                    raise ServingError(INVALID_ARGUMENT, f"instance {i} has keys {sorted(r)}; the signature "
                                                         f"takes {sorted(names)}")
            columns = {n: [r[n] for r in rows] for n in names}
        elif len(names) == 1:
            columns = {names[0]: rows}
        else:
            raise ServingError(INVALID_ARGUMENT, f"the signature has inputs {sorted(names)}: each instance "
                                                 "must be an object with those keys")
        fmt = "row"
    else:
        inputs = body["inputs"]
        if isinstance(inputs, dict) and not _is_b64(inputs):
            if set(inputs) != set(names):
                raise ServingError(INVALID_ARGUMENT, f"'inputs' has keys {sorted(inputs)}; the signature takes "
                                                     f"{sorted(names)}")
            columns = inputs
        elif len(names) == 1:
            columns = {names[0]: inputs}
        else:
            raise ServingError(INVALID_ARGUMENT, f"'inputs' must be an object with keys {sorted(names)}")
        fmt = "columnar"
    arrays = {n: _to_array(columns[n], n, signature.inputs[n]) for n in names}
    if fmt == "row" and len({a.shape[0] if a.ndim else None for a in arrays.values()}) > 1:
        raise ServingError(INVALID_ARGUMENT, "instances have inputs of different batch sizes")
    return arrays, fmt


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def _jsonable(a: np.ndarray) -> Any:
    if a.dtype.kind in "SO":
        return [_jsonable(np.asarray(x)) for x in a] if a.ndim else _bytes_json(a.item())
    return a.tolist()


def _bytes_json(b: Any) -> Any:
    import base64

    if isinstance(b, bytes):
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(b).decode("ascii")}
    return b


def format_predict_response(outputs: Mapping[str, np.ndarray], fmt: str) -> dict[str, Any]:
    """{"predictions": [...]} (one entry per instance) or {"outputs": ...}."""
    names = sorted(outputs)
    if fmt == "columnar":
        if len(names) == 1:
            return {"outputs": _jsonable(outputs[names[0]])}
        return {"outputs": {k: _jsonable(outputs[k]) for k in names}}
    sizes = {outputs[k].shape[0] if outputs[k].ndim else None for k in names}
    if len(sizes) != 1 or None in sizes:
        raise ServingError(INVALID_ARGUMENT, "outputs have different batch sizes; use the columnar 'inputs' format")
    if len(names) == 1:
        return {"predictions": _jsonable(outputs[names[0]])}
    columns = {k: _jsonable(outputs[k]) for k in names}
    return {"predictions": [{k: columns[k][i] for k in names} for i in range(sizes.pop())]}


# --- the WSGI application ------------------------------------------------------------------------


class App:
    """TensorFlow Serving's REST API as a WSGI application."""

    def __init__(self, repository: Repository, max_body: int = MAX_BODY) -> None:
        self.repository = repository
        self.max_body = max_body

    def __call__(self, environ, start_response):
        from werkzeug.wrappers import Request, Response

        request = Request(environ)
        request.max_content_length = self.max_body
        try:
            status, payload = 200, self.dispatch(request)
        except ServingError as exc:
            status, payload = exc.status, {"error": str(exc)}
        except Exception as exc:  # a bug or a model failure: answer, stay up
            status, payload = INTERNAL, {"error": f"{type(exc).__name__}: {_short(exc)}"}
        body = json.dumps(payload)
        response = Response(body, status=status, mimetype="application/json")
        return response(environ, start_response)

    def dispatch(self, request) -> dict[str, Any]:
        path, method = request.path, request.method
        if method == "POST" and (m := PREDICT.fullmatch(path)):
            verb = m["verb"].lower()
            if verb in ("classify", "regress"):
                raise ServingError(INVALID_ARGUMENT, f"{verb} needs a {verb} signature; these models have predict "
                                                     "signatures: use :predict")
            if verb != "predict":
                raise ServingError(INVALID_ARGUMENT, f"Malformed request: {method} {path}")
            servable = self._resolve(m)
            return self.predict(servable, self._json(request))
        if method == "GET" and (m := METADATA.fullmatch(path)):
            servable = self._resolve(m)
            return {"model_spec": {"name": servable.name, "signature_name": "", "version": str(servable.version)},
                    "metadata": {"signature_def": {"signature_def": servable.signature_defs}}}
        if method == "GET" and (m := STATUS.fullmatch(path)):
            if not m["name"]:
                raise ServingError(INVALID_ARGUMENT, "Missing model name in request.")
            if m["version"] is None and m["label"] is None:
                versions = self.repository.versions(m["name"])
                return {"model_version_status": [s.status() for _, s in sorted(versions.items(), reverse=True)]}
            return {"model_version_status": [self._resolve(m, status=True).status()]}
        if path.lower().startswith("/v1/"):
            raise ServingError(INVALID_ARGUMENT, f"Malformed request: {method} {path}")
        raise ServingError(NOT_FOUND, f"no such endpoint: {method} {path}; see /v1/models/NAME")

    def _resolve(self, m: re.Match, status: bool = False) -> Servable:
        name, version, label = m["name"], m["version"], m["label"]
        try:
            return self.repository.resolve(name, version, label)
        except ServingError:
            self.repository.refresh_if_stale()  # a version written since the last poll
            if status and version is not None:
                servable = self.repository.versions(name).get(int(version))
                if servable is not None:
                    return servable
                raise ServingError(NOT_FOUND, f"Could not find version {version} of model {name}") from None
            return self.repository.resolve(name, version, label)

    def _json(self, request) -> Any:
        from werkzeug.exceptions import RequestEntityTooLarge

        if request.content_length is not None and request.content_length > self.max_body:
            raise ServingError(TOO_LARGE, f"request body of {request.content_length} bytes is over the "
                                          f"{self.max_body}-byte limit")
        try:
            data = request.get_data(cache=False)
        except RequestEntityTooLarge:
            raise ServingError(TOO_LARGE, f"request body is over the {self.max_body}-byte limit") from None
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ServingError(INVALID_ARGUMENT, f"JSON Parse error: {exc}") from None

    def predict(self, servable: Servable, body: Any) -> dict[str, Any]:
        name = (body.get("signature_name") if isinstance(body, dict) else None) or DEFAULT_SIGNATURE
        if name not in servable.signatures or name.startswith("__"):
            raise ServingError(INVALID_ARGUMENT, f'Serving signature name: "{name}" not found in signature def')
        signature = servable.signatures[name]
        arrays, fmt = parse_predict_request(body, signature)
        return format_predict_response(servable.run(name, arrays), fmt)


# --- the server ------------------------------------------------------------------------------


def serve(root: str | os.PathLike = "saved_models", host: str = "127.0.0.1", port: int = 8501, *,
          threads: int = 8, max_body: int = MAX_BODY, poll_seconds: float = 1.0,
          on_ready: Callable[[str], None] | None = None) -> int:
    """Serve every model under `root` until SIGINT or SIGTERM; finishes the
    requests in flight (up to 5 s) before returning."""
    import waitress

    root = Path(root)
    if not root.is_dir():
        raise ZooError(f"model root {str(root)!r} not found; export a model first (zoo export RUN_DIR)")
    repository = Repository(root, poll_seconds)
    repository.refresh()
    repository.start()
    # waitress refuses bodies past twice our limit before reading them; the app answers 413 in JSON below that
    server = waitress.create_server(App(repository, max_body), host=host, port=port, threads=threads,
                                    max_request_body_size=2 * max_body, ident="zoo-serve",
                                    clear_untrusted_proxy_headers=True)
    url = f"http://{host}:{server.effective_port}"

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop) if threading.current_thread() is threading.main_thread() else None
    for name, versions in sorted(repository.models.items()):
        states = ", ".join(f"{v}:{s.state}" + (f" ({s.error[:120]})" if s.error else "") for v, s in sorted(versions.items()))
        print(f"  {name}: versions {states}", flush=True)
    print(f"serving {root} on {url}", flush=True)
    if on_ready:
        on_ready(url)
    try:
        server.run()  # returns on KeyboardInterrupt after letting running requests finish
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        repository.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print("zoo serve: stopped", flush=True)
    return 0


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", nargs="?", default="saved_models", help="export root (default: saved_models/)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8501, help="port (default: 8501, TensorFlow Serving's; 0: any free)")
    p.add_argument("--threads", type=int, default=8, help="requests handled at once (default: 8)")
    p.add_argument("--max-body", type=int, default=MAX_BODY, help=f"largest request body in bytes (default {MAX_BODY})")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between scans for new versions (default: 1)")


@command("serve", _serve_args)
def cmd_serve(args: argparse.Namespace) -> int:
    """Serve exported models with TensorFlow Serving's REST API."""
    return serve(args.root, args.host, args.port, threads=args.threads, max_body=args.max_body,
                 poll_seconds=args.poll)


# --- offline prediction ------------------------------------------------------------------------

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def resolve_saved_model(path: str | os.PathLike) -> Path:
    """A version folder, or a model folder (its highest version)."""
    p = Path(path)
    if (p / "saved_model.pb").is_file():
        return p
    versions = version_dirs(p)
    if not versions:
        raise ZooError(f"{str(p)!r} holds no SavedModel: give saved_models/NAME or saved_models/NAME/VERSION")
    return versions[max(versions)]


def read_inputs(path: str | os.PathLike, spec) -> np.ndarray:
    """Raw inputs from a CSV (numbers; an optional header), NPY/NPZ array, an
    image, or a folder of images, shaped for the signature input `spec`."""
    p = Path(path)
    shape = spec.shape.as_list()[1:]
    if not p.exists():
        raise ZooError(f"input {str(p)!r} not found")
    if p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES:
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) if p.is_dir() else [p]
        if not files:
            raise ZooError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {str(p)!r}")
        return np.stack([_read_image(f, shape) for f in files])
    try:
        if p.suffix.lower() == ".npy":
            x = np.load(p, allow_pickle=False)
        elif p.suffix.lower() == ".npz":
            with np.load(p, allow_pickle=False) as z:
                x = z["x"] if "x" in z.files else z[z.files[0]]
        elif p.suffix.lower() in (".csv", ".txt"):
            x = _read_csv(p)
        else:
            raise ZooError(f"cannot read {p.name!r}: use .csv, .npy, .npz or an image ({', '.join(IMAGE_SUFFIXES)})")
    except (OSError, ValueError) as exc:
        raise ZooError(f"cannot read {str(p)!r}: {exc}") from None
    x = np.asarray(x)
    if list(x.shape[1:]) != shape:
        if x.ndim >= 1 and int(np.prod(x.shape[1:] or (1,))) == int(np.prod(shape)) and None not in shape:
            x = x.reshape((len(x), *shape))
        elif list(x.shape) == shape:
            x = x[None]
        else:
            raise ZooError(f"{p.name}: examples of shape {list(x.shape[1:])}, the model takes {shape}")
    return x


def _read_csv(p: Path) -> np.ndarray:
    import csv

    with open(p, newline="") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if rows and not _numeric(rows[0]):
        rows = rows[1:]  # a header
    try:
        return np.asarray([[float(c) for c in r] for r in rows], dtype="float32")
    except ValueError as exc:
        raise ValueError(f"non-numeric value ({exc}); the CSV must hold only the model's input columns") from None


def _numeric(row: list[str]) -> bool:
    try:
        [float(c) for c in row]
    except ValueError:
        return False
    return True


def _read_image(path: Path, shape: list) -> np.ndarray:
    from PIL import Image

    if len(shape) != 3:
        raise ZooError(f"the model takes inputs of shape {shape}, not images")
    height, width, channels = shape
    try:
        img = Image.open(path).convert("L" if channels == 1 else "RGB")
    except OSError as exc:
        raise ZooError(f"cannot read image {str(path)!r}: {exc}") from None
    if height and width and img.size != (width, height):
        img = img.resize((width, height), Image.BILINEAR)
    x = np.asarray(img, dtype="float32")
    return x[..., None] if channels == 1 else x


def predict_file(saved_model: str | os.PathLike, input_path: str | os.PathLike, *, batch_size: int = 256,
                 signature: str = DEFAULT_SIGNATURE) -> list[dict[str, Any]]:
    """One dict of named outputs per input example (plus class_name when the
    export's metadata names the classes)."""
    path = resolve_saved_model(saved_model)
    servable = Servable(path.parent.name, int(path.name) if path.name.isdigit() else 0, path).load()
    if servable.state != "AVAILABLE":
        raise ZooError(f"cannot load {path}: {servable.error}")
    if signature not in servable.signatures:
        raise ZooError(f"{path} has no signature {signature!r}; it has {', '.join(servable.signatures)}")
    sig = servable.signatures[signature]
    if len(sig.inputs) != 1:
        raise ZooError(f"signature {signature!r} takes {len(sig.inputs)} inputs; zoo predict reads one")
    (name, spec), = sig.inputs.items()
    x = read_inputs(input_path, spec)
    class_names = servable.metadata.get("class_names")
    rows: list[dict[str, Any]] = []
    for start in range(0, len(x), max(1, batch_size)):
        try:
            arrays = {name: _to_array(x[start:start + batch_size].tolist(), name, spec)}
        except ServingError as exc:
            raise ZooError(str(exc)) from None
        out = format_predict_response(servable.run(signature, arrays), "row")["predictions"]
        for item in out:
            item = item if isinstance(item, dict) else {sig.outputs[0]: item}
            if class_names and isinstance(item.get("class_ids"), int) and 0 <= item["class_ids"] < len(class_names):
                item["class_name"] = class_names[item["class_ids"]]
            rows.append(item)
    return rows


def _predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("saved_model", help="saved_models/NAME/VERSION (or saved_models/NAME: its highest version)")
    p.add_argument("--input", "-i", required=True, help="CSV, .npy/.npz, an image, or a folder of images")
    p.add_argument("--output", "-o", help="write JSON lines here (default: stdout)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--signature", default=DEFAULT_SIGNATURE)


@command("predict", _predict_args)
def cmd_predict(args: argparse.Namespace) -> int:
    """Predict offline from an exported SavedModel: one JSON line per example."""
    rows = predict_file(args.saved_model, args.input, batch_size=args.batch_size, signature=args.signature)
    lines = "".join(json.dumps(r) + "\n" for r in rows)
    if args.output:
        Path(args.output).write_text(lines)
        print(f"{len(rows)} predictions written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(lines)
    return 0
