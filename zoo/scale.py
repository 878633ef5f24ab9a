"""Where and how a run computes: device, precision, compilation, distribution and backend.

The zoo scales with the engines Keras and TensorFlow already have, nothing home-made:

    device        a GPU when one is visible, else the CPU; `cpu` hides the GPUs
    precision     a Keras dtype policy (keras.mixed_precision.set_global_policy);
                  output layers stay float32 (zoo.layers.output_head)
    compilation   compile(jit_compile=...): XLA on TensorFlow, jax.jit on JAX
    distribution  tf.distribute: MirroredStrategy (all local GPUs) or
                  MultiWorkerMirroredStrategy (a cluster described by TF_CONFIG)

Defaults ("auto") are the fastest correct choice for the device found:
  * CPU: float32 and no XLA. Measured on a 2-core AVX-512 CPU, mixed_bfloat16 and XLA
    make conv nets several times slower (see benchmarks/throughput.py), and float16
    has no fast CPU kernels at all.
  * GPU with compute capability >= 7.0 (Volta and later, which have tensor cores):
    mixed_float16. Keras's guide measures up to 3x on such GPUs; the loss is scaled
    automatically (LossScaleOptimizer, added by compile) and the output layers compute
    in float32, so training stays stable. Older GPUs have no float16 speed-up: float32.
    bfloat16 is offered (`mixed_bfloat16`) for TPUs and CPUs with AMX, where it helps;
    on GPUs float16 with tensor cores is at least as fast and Keras recommends it.
  * XLA: off on TensorFlow. Seeded runs enable TF op determinism (the same seed gives
    the same metrics), and Keras compiles nothing with XLA under it; `--xla` turns XLA
    on and op determinism off for that run. On a CPU XLA is slower anyway (measured);
    on a GPU it is usually faster, so `--xla` is the flag to try there. On JAX every
    step is XLA-compiled by jax.jit whatever the flag says (`--no-xla` runs eagerly).

A model whose family trains with a custom `train_step`/`test_step` or a pretraining
hook is refused under tf.distribute and on the JAX backend unless its spec declares
the capability (`DISTRIBUTED`, `JAX`) saying it works there.

This module imports no TensorFlow at module level (the CLI and `zoo doctor` import it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ZooError, did_you_mean

DEVICES = ("auto", "cpu", "gpu")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
DISTRIBUTIONS = ("none", "mirrored", "multiworker")
BACKENDS = ("tensorflow", "jax")
#: spec capability: the family's custom train_step / pretraining works under tf.distribute
DISTRIBUTED = "distributed"
#: spec capability: the family's custom train_step works on the JAX backend
JAX = "jax"
#: GPUs from this compute capability on have tensor cores (float16 matmul/conv speed-up)
TENSOR_CORES = (7, 0)

#: strategies already created in this process (MultiWorkerMirroredStrategy can only be
#: created once, at program start)
_STRATEGIES: dict[tuple, Any] = {}


@dataclass(frozen=True)
class Runtime:
    """The resolved choices for one run (see `plan`); `configure` also makes them real."""

    backend: str
    device: str  # "cpu" or "gpu"
    devices: tuple[str, ...]  # the devices one worker computes on
    precision: str  # a Keras dtype policy name
    jit_compile: bool | str  # given to compile(): True, False or "auto"
    compilation: str  # what jit_compile means here, for people
    distribution: str  # none, mirrored, multiworker
    num_workers: int = 1
    worker_index: int = 0
    strategy: Any = field(default=None, repr=False, compare=False)

    @property
    def deterministic(self) -> bool:
        """Whether TensorFlow ops run deterministically (seeded runs repeat exactly).
        Keras compiles nothing with XLA under op determinism, so `--xla` on TensorFlow
        turns it off for the run."""
        return not (self.backend == "tensorflow" and self.jit_compile is True)

    @property
    def is_chief(self) -> bool:
        """Worker 0 writes the run directory; the others write to a temporary one."""
        return self.worker_index == 0

    @property
    def num_replicas(self) -> int:
        if self.strategy is not None:
            return int(self.strategy.num_replicas_in_sync)
        return len(self.devices) * self.num_workers if self.distribution != "none" else 1

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Build and compile inside this: the dtype policy and the strategy's scope.

        The previous global dtype policy is restored on exit (layers keep theirs).
        """
        import keras

        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy(self.precision)
        try:
            with self.strategy.scope() if self.strategy is not None else contextlib.nullcontext():
                yield
        finally:
            keras.mixed_precision.set_global_policy(previous)

    def check_model(self, spec: Any, model: Any) -> None:
        """Refuse what would train wrongly: a custom training step under a strategy or
        on a backend it was not written for, a non-float32 output under mixed precision."""
        custom = custom_training(spec, model)
        caps = set(getattr(spec, "capabilities", ()))
        if custom and self.distribution != "none" and DISTRIBUTED not in caps:
            raise ZooError(f"model {spec.name!r} trains with {custom}, which is not written for tf.distribute; "
                           f"train it without --distribute (its spec can declare the {DISTRIBUTED!r} capability "
                           "once it works under a strategy)")
        if custom and self.backend != "tensorflow" and JAX not in caps:
            raise ZooError(f"model {spec.name!r} trains with {custom}, written for TensorFlow; run it with "
                           f"KERAS_BACKEND=tensorflow (its spec can declare the {JAX!r} capability once it works "
                           f"on {self.backend})")
        if self.precision.startswith("mixed"):
            bad = [t.name if hasattr(t, "name") else str(i) for i, t in enumerate(model.outputs or [])
                   if str(getattr(t, "dtype", "float32")) != "float32"]
            if bad:
                raise ZooError(f"model {spec.name!r} has outputs {bad} that are not float32 under {self.precision}; "
                               "its output layer must keep float32 (zoo.layers.output_head does, or pass "
                               "dtype='float32'). Use --precision float32 meanwhile.")

    def prepare_fit(self, model: Any, train_ds: Any) -> None:
        """Under a strategy, build the optimizer and metric state from the pipeline's
        element spec instead of letting Keras peek at a first batch. Keras 3's peek
        (`_maybe_symbolic_build`) fails under MultiWorkerMirroredStrategy with more than
        one worker (keras-team/keras#20585), and it starts one extra pass over the
        shuffled training data, so the epochs would see other orders than a run without
        a strategy. With this, a distributed run sees the same batches."""
        if self.strategy is None or not hasattr(model, "_symbolic_build"):
            return
        with self.strategy.scope():
            model._symbolic_build(data_batch=train_ds.element_spec)
        model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None

    def write_dir(self, run_dir: Path) -> Path:
        """Where this worker writes: the run directory on the chief; on another worker a
        temporary directory inside it (as the tf.distribute guide advises), removed by
        `finish` after a successful run."""
        return Path(run_dir) if self.is_chief else Path(run_dir) / f"workertemp_{self.worker_index}"

    def finish(self, write_dir: Path) -> None:
        """Remove a non-chief worker's temporary directory (and its parent if left empty)."""
        if self.is_chief:
            return
        shutil.rmtree(write_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            write_dir.parent.rmdir()

    def to_config(self) -> dict[str, Any]:
        """The run directory's record: config.json "runtime" and "distribution"."""
        return {
            "runtime": {"backend": self.backend, "device": self.device, "devices": list(self.devices),
                        "precision": self.precision, "compilation": self.compilation,
                        "jit_compile": self.jit_compile, "deterministic": self.deterministic},
            "distribution": {"strategy": self.distribution, "num_workers": self.num_workers,
                             "worker_index": self.worker_index, "num_replicas": self.num_replicas,
                             "chief": self.is_chief},
        }

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (for `zoo info`, `zoo doctor`)."""
        return {"backend": self.backend, "device": self.device, "devices": list(self.devices),
                "precision": self.precision, "compilation": self.compilation, "jit_compile": self.jit_compile,
                "deterministic": self.deterministic,
                "distribution": self.distribution, "num_workers": self.num_workers,
                "num_replicas": self.num_replicas}

    def summary(self) -> str:
        """One line for people: backend, device, precision, compilation, distribution."""
        devices = f"{len(self.devices)} device{'s' if len(self.devices) > 1 else ''}"
        dist = "no distribution" if self.distribution == "none" else (
            f"{self.distribution} over {self.num_replicas} replica{'s' if self.num_replicas > 1 else ''}"
            + (f" on {self.num_workers} workers" if self.num_workers > 1 else ""))
        return f"{self.backend}, {self.device} ({devices}), {self.precision}, {self.compilation}, {dist}"


# --- queries ---------------------------------------------------------------------------


def backend() -> str:
    """The Keras backend this process uses (KERAS_BACKEND, else ~/.keras/keras.json)."""
    import keras

    name = keras.config.backend()
    if name not in BACKENDS:
        raise ZooError(f"the zoo trains on the {' or '.join(BACKENDS)} Keras backend, not {name!r}; "
                       "set KERAS_BACKEND=tensorflow")
    return name


def gpus(backend_name: str | None = None) -> list[dict[str, Any]]:
    """The GPUs the backend can see: [{"name", "compute_capability"}] (empty on a CPU)."""
    name = backend_name or backend()
    out = []
    if name == "tensorflow":
        import tensorflow as tf

        for i, dev in enumerate(tf.config.list_physical_devices("GPU")):
            try:
                cc = tf.config.experimental.get_device_details(dev).get("compute_capability")
            except (RuntimeError, ValueError):
                cc = None
            out.append({"name": f"/gpu:{i}", "compute_capability": tuple(cc) if cc else None})
    else:
        import jax

        try:
            devs = jax.devices("gpu")
        except RuntimeError:  # no GPU backend
            devs = []
        for dev in devs:
            cc = getattr(dev, "compute_capability", None)
            out.append({"name": f"/gpu:{dev.id}",
                        "compute_capability": tuple(int(v) for v in str(cc).split(".")) if cc else None})
    return out


def tf_config() -> dict[str, Any] | None:
    """The TF_CONFIG cluster description, checked; None when unset."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        cfg = json.loads(text)
        workers = list(cfg["cluster"]["worker"])
        task = cfg.get("task", {})
        kind, index = task.get("type", "worker"), int(task.get("index", 0))
    except (ValueError, KeyError, TypeError) as exc:
        raise ZooError(f"TF_CONFIG is not a valid cluster description ({type(exc).__name__}: {exc}); it needs "
                       '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": N}}') from None
    if kind not in ("worker", "chief") or not workers:
        raise ZooError(f"TF_CONFIG task type {kind!r} is not supported; use workers only (worker 0 is the chief)")
    n = len(workers) + len(cfg["cluster"].get("chief", []))
    if kind == "worker" and "chief" in cfg["cluster"]:
        index += len(cfg["cluster"]["chief"])
    if not 0 <= index < n:
        raise ZooError(f"TF_CONFIG task index {index} is outside the cluster's {n} workers")
    return {"workers": n, "index": index}


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    value = (value or "auto").lower().replace("-", "_")
    if value not in allowed:
        raise ZooError(f"unknown {name} {value!r}." + did_you_mean(value, allowed) + f" Use one of {', '.join(allowed)}.")
    return value


# --- deciding and applying -------------------------------------------------------------


def plan(device: str = "auto", precision: str = "auto", xla: bool | None = None,
         distribute: str | None = None) -> Runtime:
    """Resolve the run's choices from the flags and the machine, changing nothing."""
    return _resolve(device, precision, xla, distribute, apply=False)


def configure(device: str = "auto", precision: str = "auto", xla: bool | None = None,
              distribute: str | None = None) -> Runtime:
    """Resolve the choices and make them real: hide GPUs for `cpu`, create the strategy.

    Call it before any other TensorFlow work in the process: GPUs can only be hidden,
    and MultiWorkerMirroredStrategy only be created, before TensorFlow initialises.
    The dtype policy is set by `Runtime.scope()` around build and compile.
    """
    return _resolve(device, precision, xla, distribute, apply=True)


def describe_runtime(device: str = "auto", precision: str = "auto", xla: bool | None = None,
                     distribute: str | None = None) -> dict[str, Any]:
    """What a run with these flags would use (for `zoo info` and `zoo doctor`)."""
    runtime = plan(device, precision, xla, distribute)
    return {**runtime.describe(), "summary": runtime.summary()}


def _resolve(device: str, precision: str, xla: bool | None, distribute: str | None, *, apply: bool) -> Runtime:
    device = _choice("device", device, DEVICES)
    precision = _choice("precision", precision, PRECISIONS)
    distribute = _choice("distribution", distribute or "none", DISTRIBUTIONS)
    name = backend()
    if name != "tensorflow" and distribute != "none":
        raise ZooError(f"--distribute {distribute} uses tf.distribute, which needs the TensorFlow backend; "
                       f"run with KERAS_BACKEND=tensorflow (this process uses {name})")
    cluster = tf_config() if distribute == "multiworker" else None
    if distribute == "multiworker" and cluster is None:
        raise ZooError("--distribute multiworker needs the TF_CONFIG environment variable describing the cluster "
                       '(e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", '
                       '"index": 0}}); on one machine use --distribute mirrored')

    pinned = False  # the CPU is chosen but GPUs stay visible (already initialised)
    if device == "cpu" and apply:
        pinned = not _hide_gpus(name)
    found = [] if device == "cpu" else gpus(name)
    if device == "gpu" and not found:
        raise ZooError(f"--device gpu, but {name} sees no GPU; check the driver (nvidia-smi) and install the "
                       "GPU build (pip install 'tensorflow[and-cuda]' or jax[cuda12]), or use --device cpu")
    kind = "gpu" if found else "cpu"
    devices = tuple(g["name"] for g in found) if distribute != "none" else (found[0]["name"],) if found else ()
    devices = devices or ("/cpu:0",)

    if precision == "auto":
        ccs = [g["compute_capability"] for g in found]
        precision = "mixed_float16" if kind == "gpu" and all(cc and tuple(cc) >= TENSOR_CORES for cc in ccs) \
            else "float32"

    jit_compile: bool | str = "auto" if xla is None else bool(xla)
    if name == "jax":
        compilation = "XLA (jax.jit)" if jit_compile in ("auto", True) else "none (eager JAX)"
    else:  # Keras's "auto" turns XLA off under TF op determinism, which seeded runs use
        compilation = "XLA" if jit_compile is True else "no XLA"

    strategy = None
    if apply:
        strategy = _strategy(distribute, devices if (distribute == "mirrored" or pinned) else None, pinned)
    return Runtime(backend=name, device=kind, devices=devices, precision=precision, jit_compile=jit_compile,
                   compilation=compilation, distribution=distribute,
                   num_workers=cluster["workers"] if cluster else 1,
                   worker_index=cluster["index"] if cluster else 0, strategy=strategy)


def _hide_gpus(name: str) -> bool:
    """Make the backend see no GPU; False when it is too late (already initialised)."""
    if name == "tensorflow":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            return True
        try:
            tf.config.set_visible_devices([], "GPU")
            return True
        except RuntimeError:  # "Visible devices cannot be modified after being initialized"
            return False
    import jax

    try:
        from jax._src import xla_bridge

        initialised = bool(xla_bridge._backends)
    except (ImportError, AttributeError):
        initialised = True
    if not initialised:
        jax.config.update("jax_platforms", "cpu")
    else:
        jax.config.update("jax_default_device", jax.devices("cpu")[0])
    return True


def _strategy(distribute: str, devices: tuple[str, ...] | None, pinned: bool):
    """The tf.distribute strategy for a run (None: Keras's default), one per kind per process."""
    if distribute == "none" and not pinned:
        return None
    import tensorflow as tf

    key = (distribute, devices)
    if key in _STRATEGIES:
        return _STRATEGIES[key]
    if distribute == "none":  # CPU chosen after TensorFlow already initialised its GPUs
        strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    elif distribute == "mirrored":
        strategy = tf.distribute.MirroredStrategy(devices=list(devices) if devices else None)
    else:
        if any(k[0] == "multiworker" for k in _STRATEGIES):
            strategy = next(v for k, v in _STRATEGIES.items() if k[0] == "multiworker")
        else:
            try:
                strategy = tf.distribute.MultiWorkerMirroredStrategy()
            except (RuntimeError, ValueError) as exc:
                raise ZooError("MultiWorkerMirroredStrategy must be created before TensorFlow does anything else "
                               f"in the process ({exc}); start a fresh process (e.g. `zoo train ... "
                               "--distribute multiworker`)") from None
            _fix_keras_multiworker_reduce()
    _STRATEGIES[key] = strategy
    return strategy


def _fix_keras_multiworker_reduce() -> None:
    """Make Keras 3's fit report step results under MultiWorkerMirroredStrategy.

    Keras averages each step's (scalar) loss and metric results across workers with
    `strategy.reduce("MEAN", v, axis=0)`, which fails on scalars ("Invalid reduction
    dimension 0 for input with 0 dimensions"; keras-team/keras#20585). The mean across
    replicas is `axis=None`; every other case is left to Keras.
    """
    try:
        from keras.src.backend.tensorflow import trainer as tf_trainer
    except ImportError:  # another Keras layout: nothing to fix here
        return
    original = getattr(tf_trainer, "reduce_per_replica", None)
    multi_worker = getattr(tf_trainer, "_collective_all_reduce_multi_worker", None)
    if original is None or multi_worker is None or getattr(original, "zoo_fixed", False):
        return
    import keras

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and multi_worker(strategy):
            def mean(v):
                return strategy.reduce("MEAN", v, axis=0 if len(getattr(v, "shape", ())) else None)
            return keras.tree.map_structure(mean, values)
        return original(values, strategy, reduction)

    reduce_per_replica.zoo_fixed = True
    tf_trainer.reduce_per_replica = reduce_per_replica


def custom_training(spec: Any, model: Any) -> str:
    """What about this model trains outside Keras's standard step ('' when nothing):
    a custom train_step/test_step (a class outside Keras overriding it) or a pretraining hook."""
    found = []
    for method in ("train_step", "test_step"):
        for cls in type(model).__mro__:
            if method in vars(cls):
                if not cls.__module__.startswith("keras."):
                    found.append(f"a custom {method} ({cls.__name__})")
                break
    if getattr(spec, "pretrain", None) is not None:
        found.append("a pretraining hook")
    return " and ".join(found)


# --- command-line flags (shared by `zoo train`, `zoo info`, `zoo tune`) -----------------


def add_arguments(p: Any) -> None:
    """The runtime flags, for any sub-command that trains or describes a run."""
    import argparse

    g = p.add_argument_group("device, precision and distribution")
    g.add_argument("--device", default="auto", choices=DEVICES,
                   help="auto (a GPU when one is visible), cpu (hide the GPUs) or gpu")
    g.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: mixed_float16 on GPUs with tensor cores, else float32")
    g.add_argument("--xla", default=None, action=argparse.BooleanOptionalAction,
                   help="compile with XLA (default off on TensorFlow: XLA skips op determinism, so "
                        "seeded runs no longer repeat bit for bit; always on with JAX)")
    g.add_argument("--distribute", default="none", choices=DISTRIBUTIONS,
                   help="mirrored: all local GPUs; multiworker: the cluster in TF_CONFIG "
                        "(--batch-size is the global batch size)")


def options(args: Any) -> dict[str, Any]:
    """train() keyword arguments from the runtime flags."""
    return {"device": args.device, "precision": args.precision, "xla": args.xla, "distribute": args.distribute}

