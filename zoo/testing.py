"""The plugin conformance kit: the checks every model in the zoo must pass.

A third party adds one line to their own pytest suite:

    from zoo.testing import conformance_tests
    test_my_model = conformance_tests("mymodel")

which yields one parametrised test per check. This project runs the same kit over
every registered model (tests/test_conformance.py). The checks, in order:

    spec           the spec is valid (fields, tasks, search-space defaults in range)
    search_space   the search space is non-empty and declares into keras_tuner
    build_default  builds at its default hyperparameters, output of the declared shape,
                   not compiled (the zoo compiles: a compiled build is refused)
    build_sampled  builds at a seeded random point of its search space
    forward        a forward pass on tiny data: declared output shape, finite values;
                   a classifier's outputs are probabilities (softmax rows sum to 1,
                   a sigmoid unit in [0, 1])
    train_step     one training step (the zoo's own compile): finite loss, weights change;
                   a model with its own train_step declares own_train_step=True
    export         zoo.export.save_signature + tf.saved_model.load serve raw inputs
                   with the same outputs as the Keras model on preprocessed ones
    reload         the saved .keras file loads in a fresh Python process that imports
                   only the modules the spec names in keras_modules

The model-level checks (build_default, forward, train_step, export, reload) run for
every task the spec declares (a classifier and regressor is checked as both).
A plugin that fails to load fails its first check; the others are skipped, so the
failure is reported once.

The tiny synthetic data is derived from the spec: `example_input_shape` when the spec
declares one, else its default dataset's shape, else a small shape of the first
accepted rank (8 features; 12 steps x 4 features; 28x28x1 images).
`example_hyperparameters` (spec) and `hyperparameters=` (caller) keep models small.

A failing check raises ConformanceError (an AssertionError) naming the model, the
check and why: "conformance[vgg16] forward: output shape (2, 10) != declared (2, 1000)".
pytest is imported only by `conformance_tests`; TensorFlow only when a check runs.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.spec import TASKS, Boolean, Choice, DataSpec, Float, Int, ModelSpec, PerLayer

CHECKS = ("spec", "search_space", "build_default", "build_sampled", "forward", "train_step", "export", "reload")

#: one example's shape for the datasets a spec may name as its default (no loading)
DATASET_SHAPES: dict[str, tuple[int, ...]] = {
    "xor": (2,), "spirals": (2,), "iris": (4,), "wine": (13,), "breast_cancer": (30,), "diabetes": (10,),
    "digits": (8, 8, 1), "mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3),
}
#: small shapes by rank when neither the spec nor its dataset gives one
RANK_SHAPES: dict[int, tuple[int, ...]] = {1: (8,), 2: (12, 4), 3: (28, 28, 1), 4: (4, 16, 16, 1)}
#: tolerance of the export round trip (absolute and relative)
EXPORT_TOLERANCE = 1e-5
NUM_CLASSES = 3
TARGET_MEAN, TARGET_STD = [10.0, -5.0], [2.0, 3.0]


class ConformanceError(AssertionError):
    """A model failed a conformance check; the message names model, check and reason."""


def fail(model: str, check: str, reason: str) -> ConformanceError:
    return ConformanceError(f"conformance[{model}] {check}: {reason}")


# --- tiny synthetic data -----------------------------------------------------------


@dataclass
class Example:
    """Tiny synthetic data for one model: raw inputs, preprocessed inputs, targets."""

    data_spec: DataSpec
    task: str  # what the model learns on it (zoo.training.task_for)
    raw_x: np.ndarray
    x: np.ndarray
    y: np.ndarray

    @property
    def expected_output_shape(self) -> tuple[int, ...] | None:
        """The output shape the spec's contract implies, batch size included
        (None for tasks whose output the contract leaves to the model). A
        reconstruction has the input's shape, or is flat."""
        n = len(self.x)
        if self.task == "classification":
            return (n, self.data_spec.output_units)
        if self.task == "regression":
            return (n, int(self.data_spec.num_targets or 1))
        if self.task == "reconstruction":
            return (n, *self.data_spec.input_shape)
        return None


def example_input_shape(spec: ModelSpec, input_shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The small input shape used to test `spec` (see the module docstring)."""
    if input_shape is not None:
        return tuple(input_shape)
    if spec.example_input_shape is not None:
        return tuple(spec.example_input_shape)
    ranks = spec.input_ranks
    dataset_shape = DATASET_SHAPES.get(spec.default_dataset or "")
    if dataset_shape is not None and (ranks is None or len(dataset_shape) in ranks):
        return dataset_shape
    if ranks is None:
        return RANK_SHAPES[1]
    for rank in ranks:
        if rank in RANK_SHAPES:
            return RANK_SHAPES[rank]
    raise fail(spec.name, "data", f"no example input for input_ranks {ranks}; declare example_input_shape in the spec")


def example_data(spec: ModelSpec, *, task: str | None = None, input_shape: tuple[int, ...] | None = None,
                 n: int = 8, seed: int = 0) -> Example:
    """Seeded tiny data that `spec` accepts, built the way zoo.data builds real data:
    images of raw pixels 0..255 rescaled to [0, 1], other inputs standardised."""
    from zoo.data import preprocess
    from zoo.training import task_for

    task = task or next((t for t in spec.tasks if t in ("classification", "regression")), spec.tasks[0])
    shape = example_input_shape(spec, input_shape)
    rng = np.random.default_rng(seed)
    kind = {3: "image", 2: "sequence"}.get(len(shape), "tabular")
    if kind == "image":
        raw_x = rng.integers(0, 256, size=(n, *shape)).astype("float32")
        preprocessing, value_range = {"type": "rescale", "scale": 1.0 / 255.0, "offset": 0.0}, (0.0, 1.0)
    else:
        raw_x = (rng.normal(size=(n, *shape)) * 3.0 + 1.0).astype("float32")
        std = raw_x.std(axis=0)
        preprocessing = {"type": "standardize", "mean": raw_x.mean(axis=0).tolist(),
                         "std": np.where(std > 1e-8, std, 1.0).tolist()}
        value_range = None
    data_task = task if task in ("classification", "regression") else "classification"
    if data_task == "regression":
        y = (rng.normal(size=(n, len(TARGET_MEAN))) * TARGET_STD + TARGET_MEAN).astype("float32")
        preprocessing = {**preprocessing, "target": {"mean": TARGET_MEAN, "std": TARGET_STD}}
        extra: dict[str, Any] = {"num_targets": len(TARGET_MEAN)}
    else:
        y = (np.arange(n) % NUM_CLASSES).astype("int64")
        extra = {"num_classes": NUM_CLASSES, "class_names": tuple(f"class{i}" for i in range(NUM_CLASSES))}
    data_spec = DataSpec(name=f"conformance-{spec.name}", task=data_task, input_shape=tuple(shape), input_kind=kind,
                         preprocessing=preprocessing, value_range=value_range,
                         sizes={"train": n, "val": n, "test": n}, **extra)
    return Example(data_spec, task_for(spec, data_spec), raw_x, preprocess(dict(preprocessing), raw_x), y)


# --- one model under test ----------------------------------------------------------


@dataclass
class Subject:
    """A model under test: its spec, tiny data (one example per declared task) and
    small hyperparameters. `example` is the task under test (see `per_task`)."""

    spec: ModelSpec
    examples: list[Example]
    hyperparameters: dict[str, Any]
    seed: int = 0
    current: int = 0
    _models: dict[int, Any] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def example(self) -> Example:
        return self.examples[self.current]

    def per_task(self):
        """Each declared task in turn (the subject's `example` follows)."""
        for i in range(len(self.examples)):
            self.current = i
            yield self.examples[i]
        self.current = 0

    def build(self, hp: Mapping[str, Any]):
        from zoo.training import build_model

        return build_model(self.spec, hp, self.example.data_spec)

    def model(self):
        """The model at the small hyperparameters for the task under test, built once."""
        if self.current not in self._models:
            self._models[self.current] = self.build(self.hyperparameters)
        return self._models[self.current]


def subject(model: str | ModelSpec, *, hyperparameters: Mapping[str, Any] | None = None,
            input_shape: tuple[int, ...] | None = None, task: str | None = None, seed: int = 0) -> Subject:
    """Resolve a model name (or spec) into what the checks need."""
    from zoo.registry import get_spec

    spec = model if isinstance(model, ModelSpec) else get_spec(model)
    tasks = [task] if task else [t for t in spec.tasks if t in ("classification", "regression")] or [None]
    examples = [example_data(spec, task=t, input_shape=input_shape, seed=seed) for t in tasks]
    try:
        hp = spec.resolve({**spec.example_hyperparameters, **dict(hyperparameters or {})})
    except Exception as exc:
        raise fail(spec.name, "hyperparameters", str(exc)) from exc
    return Subject(spec, examples, hp, seed)


# --- the checks --------------------------------------------------------------------


def _outputs(y: Any) -> np.ndarray:
    """A model's (first) output as numpy: models with several outputs put the prediction first."""
    if isinstance(y, Mapping):
        y = next(iter(y.values()))
    elif isinstance(y, (list, tuple)):
        y = y[0]
    return np.asarray(y)


def _forward(s: Subject, model, n: int | None = None) -> np.ndarray:
    x = s.example.x if n is None else s.example.x[:n]
    return _outputs(model(x, training=False))


def _check_shape(s: Subject, check: str, out: np.ndarray, n: int) -> None:
    expected = s.example.expected_output_shape
    if expected is None:
        if out.shape[:1] != (n,):
            raise fail(s.name, check, f"output batch size {out.shape[:1]} != input batch size {n}")
        return
    expected = (n, *expected[1:])
    flat = (n, math.prod(expected[1:]))  # a reconstruction may be flat (an RBM's visible units)
    if tuple(out.shape) != expected and not (s.example.task == "reconstruction" and tuple(out.shape) == flat):
        raise fail(s.name, check, f"output shape {tuple(out.shape)} != declared {expected} "
                                  f"({s.example.task}, input {s.example.data_spec.input_shape})")


def check_spec(s: Subject, registered_name: str | None = None) -> None:
    spec = s.spec
    if not isinstance(spec, ModelSpec):
        raise fail(str(registered_name), "spec", f"{type(spec).__name__} is not a zoo.spec.ModelSpec")
    problems = list(spec.problems())
    if registered_name is not None and spec.name != registered_name:
        problems.append(f"spec name {spec.name!r} differs from its registered name {registered_name!r}")
    problems += [f"unknown task {t!r} (known: {', '.join(TASKS)})" for t in spec.tasks if t not in TASKS]
    if not spec.family or not spec.summary:
        problems.append("family and summary must be non-empty")
    if spec.input_ranks is not None and not all(isinstance(r, int) and r >= 0 for r in spec.input_ranks):
        problems.append(f"input_ranks must be non-negative ints, got {spec.input_ranks}")
    defaults = spec.hyperparameters()
    for name, param in spec.search_space.items():
        if not isinstance(param, (Int, Float, Choice, Boolean, PerLayer)):
            problems.append(f"search space {name!r} is a {type(param).__name__}, not Int/Float/Choice/Boolean/PerLayer")
        elif name in defaults and not _default_fits(param, defaults[name]):
            problems.append(f"default {name}={defaults[name]!r} lies outside its search space ({param.describe()})")
    if problems:
        raise fail(spec.name, "spec", "; ".join(problems))


def _default_fits(param: Any, default: Any) -> bool:
    if default == "auto" and isinstance(param, Float):  # a number chosen at training time (learning_rate)
        return True
    if isinstance(param, PerLayer):  # a list of widths, each in the per-layer range ([]: the family's own rule)
        return isinstance(default, list) and all(_default_fits(param.width, w) for w in default)
    if isinstance(param, Boolean):
        return isinstance(default, bool)
    if isinstance(param, Choice):
        return default in param.values
    return isinstance(default, (int, float)) and not isinstance(default, bool) and param.min <= default <= param.max


def sample_point(spec: ModelSpec, seed: int = 0) -> dict[str, Any]:
    """A seeded random point of the spec's search space, through keras_tuner."""
    import keras_tuner

    from zoo.spec import declare_space, space_values

    hp = keras_tuner.HyperParameters()
    defaults = spec.hyperparameters()
    declare_space(spec.search_space, defaults, hp)
    sampled = {p.name: p.random_sample(seed + i) for i, p in enumerate(hp.space)}
    values = space_values(spec.search_space, defaults, sampled)
    return {name: values[name] for name in spec.search_space}


def check_search_space(s: Subject) -> None:
    if not s.spec.search_space:
        raise fail(s.name, "search_space", "the search space is empty; declare what `zoo tune` may vary")
    try:
        point = sample_point(s.spec, s.seed)
        s.spec.resolve(point)
    except Exception as exc:
        raise fail(s.name, "search_space",
                   f"cannot declare/sample it with keras_tuner: {type(exc).__name__}: {exc}") from exc
    if set(point) != set(s.spec.search_space):
        raise fail(s.name, "search_space",
                   f"keras_tuner declared {sorted(point)}, spec has {sorted(s.spec.search_space)}")


def check_build_default(s: Subject) -> None:
    from zoo.errors import ZooError

    hp = s.spec.resolve()
    try:
        model = s.model() if hp == s.hyperparameters else s.build(hp)
    except ZooError as exc:  # the core's own refusals (a compiled build, a logits classifier) name the fix
        raise fail(s.name, "build_default", str(exc)) from exc
    _check_shape(s, "build_default", _forward(s, model, 2), 2)


def check_build_sampled(s: Subject) -> None:
    point = sample_point(s.spec, s.seed)
    hp = s.spec.resolve({**s.hyperparameters, **point})
    try:
        model = s.build(hp)
    except Exception as exc:
        raise fail(s.name, "build_sampled", f"at {point}: {type(exc).__name__}: {exc}") from exc
    _check_shape(s, "build_sampled", _forward(s, model, 2), 2)


def check_forward(s: Subject) -> None:
    out = _forward(s, s.model())
    _check_shape(s, "forward", out, len(s.example.x))
    if not np.all(np.isfinite(out)):
        raise fail(s.name, "forward", f"{int(np.sum(~np.isfinite(out)))} of {out.size} output values are NaN/inf")
    if s.example.task == "classification":
        sums = out.sum(axis=-1)
        probabilities = out.min() >= 0 and out.max() <= 1 and (out.shape[-1] == 1 or np.allclose(sums, 1, atol=1e-3))
        if not probabilities:
            raise fail(s.name, "forward", f"a classifier's outputs must be probabilities (the zoo's cross-entropy "
                                          f"takes them), got values {out.min():.3g}..{out.max():.3g} with row sums "
                                          f"{sums.min():.3g}..{sums.max():.3g}: end it with softmax (sigmoid for "
                                          "one unit), e.g. zoo.layers.output_head(x, data_spec)")


def check_train_step(s: Subject, tmp_dir: Path) -> None:
    import keras

    from zoo.data import Dataset
    from zoo.training import compile_model

    ex = s.example
    model = s.build(s.hyperparameters)  # its own copy: training changes the weights
    compile_model(model, s.spec, s.hyperparameters, ex.data_spec, steps_per_epoch=1)
    own = type(model).train_step is not keras.Model.train_step
    if own != s.spec.own_train_step:
        raise fail(s.name, "train_step", "the model has its own train_step: declare own_train_step=True in the spec "
                   "(then --adversarial, which would replace it, is refused unless the spec also declares the "
                   "'adversarial' capability)" if own else
                   "the spec declares own_train_step=True but the model uses Keras's train_step: drop it")
    if not own:
        # Keras's own step: eager runs the same maths and starts ~10x sooner than tracing
        # a deep graph (ResNet-50: 8 s vs 70 s). A plugin's own train_step runs traced, as in fit.
        model.run_eagerly = True
    if s.spec.pretrain is not None:
        arrays = {split: (ex.x, ex.y) for split in ("train", "val", "test")}
        s.spec.pretrain(model, Dataset(ex.data_spec, arrays, batch_size=len(ex.x), seed=s.seed), s.hyperparameters,
                        tmp_dir)
    if not model.trainable_weights:
        raise fail(s.name, "train_step", "the model has no trainable weights")
    before = [np.array(w.numpy(), copy=True) for w in model.trainable_weights]
    targets = ex.x if ex.task in ("reconstruction", "features") else ex.y
    logs = model.train_on_batch(ex.x, targets, return_dict=True)
    bad = {k: float(v) for k, v in logs.items() if not math.isfinite(float(np.asarray(v)))}
    if not logs or bad:
        raise fail(s.name, "train_step", f"loss is not finite after one step: {bad or logs}")
    if all(np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)):
        raise fail(s.name, "train_step", "one training step changed no weight (loss "
                                         f"{float(np.asarray(logs.get('loss', float('nan')))):.4g})")


#: the signature output that holds the Keras model's output, by task (zoo.export's contract)
SIGNATURE_OUTPUTS = {"classification": "probabilities", "regression": "predictions", "reconstruction": "reconstruction",
                     "features": "features"}


def check_export(s: Subject, tmp_dir: Path) -> None:
    try:
        from zoo.export import save_signature
    except ImportError as exc:
        raise fail(s.name, "export", f"export module not available (cannot import zoo.export: {exc})") from exc
    import tensorflow as tf

    ex = s.example
    model = s.model()
    path = Path(tmp_dir) / f"{s.name}-savedmodel"
    save_signature(model, ex.data_spec, ex.task, path)
    loaded = tf.saved_model.load(str(path))
    if "serving_default" not in loaded.signatures:
        raise fail(s.name, "export", f"no serving_default signature (has {sorted(loaded.signatures)})")
    fn = loaded.signatures["serving_default"]
    inputs = fn.structured_input_signature[1]
    if len(inputs) != 1:
        raise fail(s.name, "export", f"serving_default takes {sorted(inputs)}; expected one input")
    (input_name, input_spec), = inputs.items()
    raw = tf.constant(ex.raw_x.astype(input_spec.dtype.as_numpy_dtype))
    served = {k: np.asarray(v) for k, v in fn(**{input_name: raw}).items()}
    expected = _forward(s, model)
    key = SIGNATURE_OUTPUTS.get(ex.task)
    if key not in served:
        if len(served) != 1:
            raise fail(s.name, "export", f"signature outputs {sorted(served)} lack {key!r}")
        key = next(iter(served))
    got = served[key]
    if got.shape != expected.shape:
        raise fail(s.name, "export", f"served {key!r} has shape {got.shape}; the Keras model gives {expected.shape}")
    if not np.allclose(got, expected, rtol=EXPORT_TOLERANCE, atol=EXPORT_TOLERANCE):
        diff = float(np.max(np.abs(got - expected)))
        raise fail(s.name, "export", f"served {key!r} on raw inputs differs from the Keras model on preprocessed "
                                     f"inputs by up to {diff:.3g} (tolerance {EXPORT_TOLERANCE:g}); is the "
                                     "preprocessing in the signature the dataset's?")
    if "class_ids" in served and ex.task == "classification":
        ids = expected.argmax(axis=-1) if expected.shape[-1] > 1 else (expected[:, 0] > 0.5).astype("int64")
        if not np.array_equal(np.asarray(served["class_ids"]).reshape(-1), ids.reshape(-1)):
            raise fail(s.name, "export", "served 'class_ids' are not the most probable classes")


#: runs a saved model's reload in a fresh interpreter: argv = path, then the modules to import
_RELOAD = ("import importlib, sys\n"
           "for module in sys.argv[2:]:\n"
           "    importlib.import_module(module)\n"
           "import keras\n"
           "keras.saving.load_model(sys.argv[1], compile=False)\n")


def check_reload(s: Subject, tmp_dir: Path) -> None:
    """The .keras file reloads where only the spec's keras_modules are imported
    (as `zoo export`, `zoo serve` and transfer load it): a custom layer must be
    registered with keras.saving.register_keras_serializable in one of them."""
    import subprocess
    import sys

    path = Path(tmp_dir) / f"{s.name}.keras"
    s.model().save(path)
    result = subprocess.run([sys.executable, "-c", _RELOAD, str(path), *s.spec.keras_modules], capture_output=True,
                            text=True, timeout=300, env=_quiet_env())
    if result.returncode != 0:
        lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
        missing = next((ln for ln in lines if "Could not locate" in ln or "Unknown" in ln), lines[-1] if lines else "")
        raise fail(s.name, "reload", f"the saved .keras does not load in a fresh process importing only "
                                     f"keras_modules={list(s.spec.keras_modules)}: {missing.strip()[:300]}. Decorate "
                                     "each custom layer/model class with @keras.saving.register_keras_serializable"
                                     "(package=...) and name its module in the spec's keras_modules")


def _quiet_env() -> dict[str, str]:
    """This process's environment and module path (a plugin on sys.path, not installed,
    is found there too), with TensorFlow's start-up lines off."""
    import os
    import sys

    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


def _each_task(check_fn: Callable[..., None]) -> Callable[[Subject, Path], None]:
    """Run a model-level check once per declared task, saying which task failed."""
    def run(s: Subject, tmp: Path) -> None:
        for example in s.per_task():
            try:
                check_fn(s, tmp)
            except ConformanceError as exc:
                if len(s.examples) > 1:
                    raise ConformanceError(f"{exc} (as a {example.task} model)") from exc
                raise
    return run


_RUNNERS: dict[str, Callable[..., None]] = {
    "spec": lambda s, tmp: check_spec(s), "search_space": lambda s, tmp: check_search_space(s),
    "build_default": _each_task(lambda s, tmp: check_build_default(s)),
    "build_sampled": lambda s, tmp: check_build_sampled(s),
    "forward": _each_task(lambda s, tmp: check_forward(s)), "train_step": _each_task(check_train_step),
    "export": _each_task(check_export), "reload": check_reload,
}

_subjects: dict[tuple, Subject] = {}
#: models that failed to load, by key -> the check that reported it (the others are skipped)
_load_failures: dict[tuple, str] = {}


class AlreadyReported(ConformanceError):
    """The model failed to load and an earlier check said so: this check is skipped."""


def _key(model: str | ModelSpec, options: Mapping[str, Any]) -> tuple:
    name = model.name if isinstance(model, ModelSpec) else model
    return (name, id(model) if isinstance(model, ModelSpec) else None, repr(sorted(options.items())))


def check(model: str | ModelSpec, name: str, *, tmp_dir: str | Path | None = None, **options: Any) -> None:
    """Run conformance check `name` on `model` (a registered name or a spec).

    Options: hyperparameters={...}, input_shape=(...), task="...", seed=0.
    Raises ConformanceError saying which model, which check and why.
    """
    if name not in _RUNNERS:
        raise ValueError(f"unknown conformance check {name!r}; checks: {', '.join(CHECKS)}")
    label = model.name if isinstance(model, ModelSpec) else model
    key = _key(model, options)
    if key in _load_failures:
        raise AlreadyReported(f"conformance[{label}] {name}: skipped, the model did not load (reported by its "
                              f"{_load_failures[key]} check)")
    try:
        s = _subjects.get(key) or subject(model, **options)
    except ConformanceError:
        _load_failures[key] = name
        raise
    except Exception as exc:
        _load_failures[key] = name
        raise fail(label, name, f"cannot load the model: {type(exc).__name__}: {exc}") from exc
    if key not in _subjects:  # keep one model's subject: the tests run model by model
        _subjects.clear()
        _subjects[key] = s
    if name == "spec" and not isinstance(model, ModelSpec):
        return check_spec(s, registered_name=model)
    with tempfile.TemporaryDirectory(prefix=f"zoo-conformance-{label}-") as tmp:
        try:
            _RUNNERS[name](s, Path(tmp_dir or tmp))
        except ConformanceError:
            raise
        except Exception as exc:
            raise fail(label, name, f"{type(exc).__name__}: {exc}") from exc


def run_checks(model: str | ModelSpec, checks: Iterable[str] = CHECKS, **options: Any) -> dict[str, str | None]:
    """Every check on one model: check name -> None when passed, else the failure message."""
    results: dict[str, str | None] = {}
    for name in checks:
        try:
            check(model, name, **options)
            results[name] = None
        except AlreadyReported as exc:
            results[name] = f"skipped: {exc}"
        except AssertionError as exc:
            results[name] = str(exc)
    return results


def conformance_tests(*models: str | ModelSpec, checks: Iterable[str] = CHECKS,
                      overrides: Mapping[str, Mapping[str, Any]] | None = None,
                      marks: Mapping[str, Any] | None = None, **options: Any):
    """A pytest test function parametrised over models x checks.

        test_my_model = conformance_tests("mymodel")
        test_zoo = conformance_tests(*zoo.list_models(), overrides={"vgg16": {"hyperparameters": {...}}})

    `options` (hyperparameters, input_shape, task, seed) apply to every model,
    `overrides[name]` on top for one model, where it may also give that model's own
    `checks` and `marks`; `marks` maps a check name to pytest marks for it (e.g. a
    skipif, or pytest.mark.slow for a big model's build_default).
    """
    import pytest

    params = []
    for model in models:
        label = model.name if isinstance(model, ModelSpec) else model
        opts = {**options, **dict((overrides or {}).get(label, {}))}
        model_checks, model_marks = tuple(opts.pop("checks", checks)), {**(marks or {}), **opts.pop("marks", {})}
        unknown = [c for c in model_checks if c not in _RUNNERS]
        if unknown:
            raise ValueError(f"unknown conformance checks {unknown}; checks: {', '.join(CHECKS)}")
        for name in model_checks:
            mark = model_marks.get(name, ())
            params.append(pytest.param(model, name, opts, id=f"{label}-{name}",
                                       marks=mark if isinstance(mark, (list, tuple)) else [mark]))

    @pytest.mark.parametrize(("zoo_model", "zoo_check", "zoo_options"), params)
    def test_conformance(zoo_model, zoo_check, zoo_options, tmp_path):
        try:
            check(zoo_model, zoo_check, tmp_dir=tmp_path, **zoo_options)
        except AlreadyReported as exc:
            pytest.skip(str(exc))

    return test_conformance


def write_dist_info(site: str | Path, name: str, version: str, models: Mapping[str, str] | None = None,
                    **groups: Mapping[str, str]) -> Path:
    """Declare a distribution and its entry points in directory `site` (a
    `<name>-<version>.dist-info` with METADATA and entry_points.txt), as pip would.

    With `site` (and the plugin's source) on sys.path or PYTHONPATH the registry
    finds the plugin, without installing it: fast tests of entry-point loading.
    `models` maps model name -> "module:attribute"; `datasets=`, `commands=` and
    `callbacks=` do the same for those groups.
    """
    dist = Path(site) / f"{name.replace('-', '_')}-{version}.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    sections = {"models": models or {}, **groups}
    text = "".join(f"[zoo.{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items())
                   for group, entries in sections.items() if entries)
    (dist / "entry_points.txt").write_text(text)
    return dist
