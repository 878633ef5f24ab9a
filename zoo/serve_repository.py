"""The model repository of `zoo serve`: which versions to load, loading them
(with retries and warm-up, as TensorFlow Serving does), and finding the one a
request names.

Models come from a root folder (`ROOT/NAME/VERSION/`, one model per sub-folder,
labels from `ROOT/NAME/labels.json`) or from TensorFlow Serving's model config
(`model_config_list`, parsed with its own protos). Each model has a version
policy (latest N, all, or specific versions; TensorFlow Serving's default is the
latest one). The repository polls the disk: new versions are loaded, versions the
policy no longer wants are unloaded once a wanted one is available (TensorFlow
Serving's availability-preserving policy), a failed load is retried, and a label
names a version only while that version is AVAILABLE.

TensorFlow is imported only when a version is loaded.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.serve_status import Code, ServingError, short

LABELS_FILE = "labels.json"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TensorFlow Serving's WarmupConsts::kMaxNumRecords
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


# --- one loaded version ----------------------------------------------------------------


@dataclass
class TensorInfo:
    """One signature input or output: its dtype and shape (None: any size)."""

    dtype: np.dtype
    dtype_name: str  # e.g. "DT_FLOAT", as in TensorFlow Serving's messages
    shape: list[int | None] | None  # None: unknown rank

    @property
    def tf_name(self) -> str:
        return self.dtype_name[3:].lower()  # DT_FLOAT -> float, as TensorFlow's DataTypeString


@dataclass
class Signature:
    name: str
    method: str
    fn: Any
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]

    @property
    def batchable(self) -> bool:
        """Every input and output has a leading batch dimension of any size."""
        return all(t.shape and t.shape[0] is None for t in (*self.inputs.values(), *self.outputs.values()))


def _tensor_info(proto) -> TensorInfo:
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2

    shape = None if proto.tensor_shape.unknown_rank else [
        None if d.size < 0 else int(d.size) for d in proto.tensor_shape.dim]
    dtype = tf.dtypes.as_dtype(proto.dtype)
    np_dtype = np.dtype(object) if dtype == tf.string else np.dtype(dtype.as_numpy_dtype)
    return TensorInfo(np_dtype, types_pb2.DataType.Name(proto.dtype), shape)


def read_saved_model_proto(path: Path):
    """The SavedModel proto of a version folder, from saved_model.pb or saved_model.pbtxt."""
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    if (path / "saved_model.pb").is_file():
        proto.ParseFromString((path / "saved_model.pb").read_bytes())
    else:
        text_format.Parse((path / "saved_model.pbtxt").read_text(), proto)
    return proto


@dataclass
class Servable:
    """One version of one model and its state (START, LOADING, AVAILABLE, END)."""

    name: str
    version: int
    path: Path
    state: str = "START"
    error: ServingError | None = None
    stamp: tuple = ()
    loaded: Any = None
    signatures: dict[str, Signature] = field(default_factory=dict)
    signature_def_map: Any = None  # tensorflow.serving.SignatureDefMap (for GetModelMetadata)
    metadata: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    retry_at: float = 0.0

    def status(self) -> dict[str, Any]:
        """TensorFlow Serving's ModelVersionStatus as JSON."""
        code, message = (self.error.code.name, str(self.error)) if self.error else ("OK", "")
        return {"version": str(self.version), "state": self.state,
                "status": {"error_code": code, "error_message": message}}

    def load(self, warmup: Callable[["Servable"], None] | None = None) -> "Servable":
        """Load the SavedModel, read its signatures, replay its warm-up requests:
        AVAILABLE, or END with the error (a broken version never takes the server down)."""
        try:
            self._load()
            if warmup is not None:
                warmup(self)
            self.state, self.error = "AVAILABLE", None
        except Exception as exc:
            error = exc if isinstance(exc, ServingError) else ServingError(
                Code.UNKNOWN, f"{type(exc).__name__}: {exc}"[:2000])
            self.state, self.error, self.loaded, self.signatures = "END", error, None, {}
        return self

    def _load(self) -> None:
        import tensorflow as tf
        from tensorflow_serving.apis import get_model_metadata_pb2

        proto = read_saved_model_proto(self.path)
        defs = proto.meta_graphs[0].signature_def
        self.signature_def_map = get_model_metadata_pb2.SignatureDefMap()
        for key, sig_def in defs.items():
            self.signature_def_map.signature_def[key].CopyFrom(sig_def)
        self.loaded = tf.saved_model.load(str(self.path))
        self.signatures = {
            key: Signature(key, defs[key].method_name, fn,
                           {k: _tensor_info(v) for k, v in defs[key].inputs.items()},
                           {k: _tensor_info(v) for k, v in defs[key].outputs.items()})
            for key, fn in self.loaded.signatures.items() if key in defs}
        meta = self.path / "assets.extra" / "metadata.json"
        self.metadata = json.loads(meta.read_text()) if meta.exists() else {}

    def unload(self) -> None:
        """Mark unloaded; requests already holding it finish, then it is garbage collected."""
        self.state = "END"

    def run(self, signature: str, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Call a signature on validated arrays: the one place a model runs."""
        import tensorflow as tf

        sig = self.signatures[signature]
        try:
            out = sig.fn(**{k: tf.constant(v, dtype=sig.inputs[k].dtype if sig.inputs[k].dtype != object else tf.string)
                            for k, v in arrays.items()})
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:
            raise ServingError(Code.INVALID_ARGUMENT, short(exc)) from None
        return {k: v.numpy() for k, v in out.items()}


def read_warmup_logs(servable: Servable) -> list:
    """The PredictionLog records of a version's warm-up file (none when it has no file).

    A file that is not TFRecord fails with DATA_LOSS, a record that is not a
    PredictionLog with INVALID_ARGUMENT, as TensorFlow Serving's saved_model_warmup_util."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError
    from tensorflow_serving.apis import prediction_log_pb2

    path = servable.path / WARMUP_FILE
    if not path.is_file():
        return []
    logs = []
    try:
        for record in tf.data.TFRecordDataset(str(path)):
            if len(logs) >= MAX_WARMUP_RECORDS:
                raise ServingError(Code.INVALID_ARGUMENT, f"Number of warmup records exceeds the maximum "
                                                          f"({MAX_WARMUP_RECORDS}) at {path}")
            log = prediction_log_pb2.PredictionLog()
            try:
                log.ParseFromString(record.numpy())
            except DecodeError:
                raise ServingError(Code.INVALID_ARGUMENT, f"Failed to parse warmup record from {path}") from None
            logs.append(log)
    except tf.errors.DataLossError as exc:
        raise ServingError(Code.DATA_LOSS, f"{exc.message}. Please verify your warmup data is in TFRecord "
                                           f"format.") from None
    return logs


# --- versions on disk and version policies ---------------------------------------------------


def version_dirs(model_dir: Path) -> dict[int, Path]:
    """Integer version folders that hold a saved_model.pb or saved_model.pbtxt (the
    hidden `.N.tmp-*` folders an export writes are not versions)."""
    out = {}
    try:
        children = list(Path(model_dir).iterdir())
    except OSError:
        return out
    for child in children:
        if child.name.isdigit() and ((child / "saved_model.pb").is_file() or (child / "saved_model.pbtxt").is_file()):
            out[int(child.name)] = child
    return out


def _stamp(path: Path) -> tuple:
    """Identity of a version's files: changes when a file arrives or is rewritten, so a
    version whose files landed out of order, or that was overwritten, is loaded again."""
    out = []
    for part in ("saved_model.pb", "saved_model.pbtxt", "variables", "variables/variables.index", "assets.extra"):
        try:
            st = (path / part).stat()
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


@dataclass(frozen=True)
class Policy:
    """TensorFlow Serving's ServableVersionPolicy: latest N, all, or specific versions."""

    kind: str = "latest"  # latest | all | specific
    count: int = 1
    versions: tuple[int, ...] = ()

    def select(self, found: Iterable[int]) -> set[int]:
        found = sorted(found)
        if self.kind == "all":
            return set(found)
        if self.kind == "specific":
            return set(found) & set(self.versions)
        return set(found[-self.count:]) if self.count > 0 else set()

    @classmethod
    def parse(cls, text: str) -> "Policy":
        """`latest`, `latest:N` or `all` (the --version-policy flag)."""
        kind, _, n = text.strip().lower().partition(":")
        if kind == "all" and not n:
            return cls("all")
        if kind == "latest" and (not n or (n.isdigit() and int(n) > 0)):
            return cls("latest", int(n or 1))
        raise ValueError(f"unknown version policy {text!r}: use latest, latest:N or all")

    @classmethod
    def from_proto(cls, proto) -> "Policy":
        choice = proto.WhichOneof("policy_choice")
        if choice == "all":
            return cls("all")
        if choice == "specific":
            return cls("specific", versions=tuple(int(v) for v in proto.specific.versions))
        return cls("latest", int(proto.latest.num_versions) if choice == "latest" and proto.latest.num_versions else 1)


@dataclass(frozen=True)
class ModelSource:
    """One model to serve: its name, the folder of its versions, policy and labels."""

    name: str
    base_path: Path
    policy: Policy = Policy()
    labels: Mapping[str, int] = field(default_factory=dict)


def root_sources(root: Path, policy: Policy) -> list[ModelSource]:
    """One model per sub-folder of `root` (hidden folders skipped), labels from labels.json."""
    if not root.is_dir():
        return []
    return [ModelSource(d.name, d, policy, _read_labels(d / LABELS_FILE))
            for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]


def _read_labels(path: Path) -> dict[str, int]:
    try:
        data = json.loads(path.read_text())
        return {str(k): int(v) for k, v in data.items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        print(f"zoo serve: ignoring {path}: {exc}", file=sys.stderr)
        return {}


def parse_model_config(text: str):
    """A ModelServerConfig from its text format (TensorFlow Serving's --model_config_file)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise ServingError(Code.INVALID_ARGUMENT, f"cannot parse the model config: {exc}") from None
    return config


def config_sources(config, base_dir: Path) -> list[ModelSource]:
    """The models of a ModelServerConfig (relative base paths are read from `base_dir`)."""
    if config.WhichOneof("config") != "model_config_list":
        raise ServingError(Code.INVALID_ARGUMENT, "ServerModelConfig type not supported by HandleReloadConfigRequest."
                                                  " Only ModelConfigList is currently supported")
    sources, seen = [], set()
    for entry in config.model_config_list.config:
        if not entry.name or not entry.base_path:
            raise ServingError(Code.INVALID_ARGUMENT, f"model config entry {entry.name!r} needs a name and a base_path")
        if entry.name in seen:
            raise ServingError(Code.INVALID_ARGUMENT, f"Illegal to list model {entry.name} multiple times in config list")
        if entry.model_platform not in ("", "tensorflow"):
            raise ServingError(Code.INVALID_ARGUMENT, f"model {entry.name}: platform {entry.model_platform!r} is not "
                                                      "supported (only 'tensorflow')")
        seen.add(entry.name)
        policy = Policy.from_proto(entry.model_version_policy)
        sources.append(ModelSource(entry.name, base_dir / entry.base_path, policy, dict(entry.version_labels)))
    return sources


# --- the repository ------------------------------------------------------------------------------


class Repository:
    """The models to serve, kept in step with the disk by polling.

    `sources` gives the models (a root folder's, or a model config's); `warmup`
    replays a version's warm-up requests before it becomes AVAILABLE; `on_load`
    hears of every load attempt (servable, seconds)."""

    def __init__(self, root: str | os.PathLike | None = None, poll_seconds: float = 1.0, *,
                 policy: Policy = Policy("all"), sources: list[ModelSource] | None = None,
                 max_load_retries: int = 5, retry_interval: float = 60.0,
                 warmup: Callable[[Servable], None] | None = None,
                 on_load: Callable[[Servable, float], None] | None = None) -> None:
        self.root = Path(root) if root is not None else None
        self.policy = policy
        self._sources = sources
        self.poll_seconds = poll_seconds
        self.max_load_retries = max_load_retries
        self.retry_interval = retry_interval
        self.warmup = warmup
        self.on_load = on_load
        self.models: dict[str, dict[int, Servable]] = {}
        self.labels: dict[str, dict[str, int]] = {}
        self.label_problems: list[str] = []
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._refreshed = 0.0

    # -- what to serve

    def sources(self) -> list[ModelSource]:
        if self._sources is not None:
            return list(self._sources)
        return root_sources(self.root, self.policy) if self.root is not None else []

    def set_sources(self, sources: list[ModelSource]) -> list[str]:
        """Serve exactly these models from now on (a config reload); waits for the
        loads and returns the labels that could not be assigned."""
        self._sources = list(sources)
        self.refresh()
        return list(self.label_problems)

    # -- keeping in step with the disk

    def refresh_if_stale(self, seconds: float = 0.25) -> None:
        """Refresh unless that was done in the last `seconds` or is under way (lookup
        misses call this: a request never waits for another's loads)."""
        if time.monotonic() - self._refreshed > seconds and self._refresh_lock.acquire(blocking=False):
            try:
                self._refresh()
            finally:
                self._refresh_lock.release()

    def refresh(self) -> None:
        """Load wanted versions, retry failed ones, unload unwanted ones, re-read labels."""
        with self._refresh_lock:
            self._refresh()

    def _refresh(self) -> None:
        sources = self.sources()
        for source in sources:
            self._refresh_model(source)
        wanted = {s.name for s in sources}
        with self._lock:
            for name in [n for n in self.models if n not in wanted]:
                for servable in self.models.pop(name).values():
                    servable.unload()
            self._assign_labels(sources)
        self._refreshed = time.monotonic()

    def _refresh_model(self, source: ModelSource) -> None:
        on_disk = version_dirs(source.base_path)
        aspired = source.policy.select(on_disk)
        current = dict(self.models.get(source.name, {}))
        for version in sorted(aspired, reverse=True):  # the newest first: it is the one served by default
            old = current.get(version)
            if self._should_load(old, on_disk[version]):
                current[version] = self._load(source.name, version, on_disk[version], old)
                self._publish(source.name, current)
        keep_old = not any(s.state == "AVAILABLE" for v, s in current.items() if v in aspired)
        for version, servable in list(current.items()):
            if version in aspired or (keep_old and servable.state == "AVAILABLE"):
                continue
            if version not in on_disk:
                del current[version]
            elif servable.state == "END" and servable.error is None:
                continue  # already unloaded
            else:
                current[version] = Servable(source.name, version, servable.path, state="END")  # unloaded
            servable.unload()
        self._publish(source.name, current)

    def _should_load(self, old: Servable | None, path: Path) -> bool:
        if old is None or (old.state == "END" and old.error is None):  # new, or wanted again after an unload
            return True
        if _stamp(path) != old.stamp:  # files arrived or were rewritten
            return True
        return old.error is not None and old.attempts <= self.max_load_retries and time.monotonic() >= old.retry_at

    def _load(self, name: str, version: int, path: Path, old: Servable | None) -> Servable:
        stamp = _stamp(path)
        attempts = old.attempts + 1 if old is not None and old.error is not None and old.stamp == stamp else 1
        started = time.monotonic()
        servable = Servable(name, version, path, state="LOADING", stamp=stamp).load(self.warmup)
        servable.attempts = attempts
        if servable.error is not None and attempts <= self.max_load_retries:
            servable.state = "LOADING"  # TensorFlow Serving retries: still loading, the last error shown
            servable.retry_at = time.monotonic() + self.retry_interval
        if self.on_load is not None:
            self.on_load(servable, time.monotonic() - started)
        return servable

    def _publish(self, name: str, versions: dict[int, Servable]) -> None:
        with self._lock:
            self.models[name] = dict(versions)

    def _assign_labels(self, sources: list[ModelSource]) -> None:
        """Labels name AVAILABLE versions only (TensorFlow Serving refuses the others)."""
        labels, problems = {}, []
        for source in sources:
            versions = self.models.get(source.name, {})
            for label, version in source.labels.items():
                if version in versions and versions[version].state == "AVAILABLE":
                    labels.setdefault(source.name, {})[label] = version
                else:
                    problems.append(f"Request to assign label to version {version} of model {source.name}, "
                                    "which is not currently available for inference")
        if problems and problems != self.label_problems:
            for problem in problems:
                print(f"zoo serve: label not assigned: {problem}", file=sys.stderr)
        self.labels, self.label_problems = labels, problems

    def start(self, extra: Iterable[tuple[float, Callable[[], None]]] = ()) -> None:
        """Poll the disk every poll_seconds (and run each (seconds, fn) of `extra` that often)."""
        def loop(seconds: float, fn: Callable[[], None]) -> None:
            while not self._stop.wait(seconds):
                try:
                    fn()
                except Exception as exc:  # keep polling whatever happens on disk
                    print(f"zoo serve: {getattr(fn, '__name__', 'poll')} failed: {exc}", file=sys.stderr)

        if self.poll_seconds > 0:
            extra = [(self.poll_seconds, self.refresh), *extra]
        for seconds, fn in extra:
            thread = threading.Thread(target=loop, args=(seconds, fn), name="zoo-serve-poll", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    # -- finding what a request names

    def versions(self, name: str) -> dict[int, Servable]:
        with self._lock:
            versions = dict(self.models.get(name, {}))
        if not versions:
            raise ServingError(Code.NOT_FOUND, f"Could not find any versions of model {name}")
        return versions

    def label_version(self, name: str, label: str) -> int:
        with self._lock:
            version = self.labels.get(name, {}).get(label)
        if version is None:
            raise ServingError(Code.INVALID_ARGUMENT, f"Unrecognized servable version label: {label}")
        return version

    def resolve(self, name: str, version: int | str | None = None, label: str | None = None) -> Servable:
        """The AVAILABLE servable a request names: a version, a label, or the highest."""
        if label is not None:
            version = self.label_version(name, label)
        with self._lock:
            versions = dict(self.models.get(name, {}))
        if version is not None:
            servable = versions.get(int(version))
            if servable is None or servable.state != "AVAILABLE":
                raise ServingError(Code.NOT_FOUND, f"Servable not found for request: Specific({name}, {version})")
            return servable
        available = [s for v, s in sorted(versions.items()) if s.state == "AVAILABLE"]
        if not available:
            raise ServingError(Code.NOT_FOUND, f"Servable not found for request: Latest({name})")
        return available[-1]


def describe(repository: Repository) -> list[str]:
    """One line per model for the start-up banner: versions and their states."""
    lines = []
    with repository._lock:
        models = {n: dict(v) for n, v in repository.models.items()}
    for name, versions in sorted(models.items()):
        states = ", ".join(f"{v}:{s.state}" + (f" ({str(s.error)[:120]})" if s.error else "")
                           for v, s in sorted(versions.items()))
        lines.append(f"  {name}: versions {states or 'none yet'}")
    return lines
