"""Training throughput (samples/s): `zoo train` against bare Keras and plain PyTorch.

    python benchmarks/throughput.py                 # all rows, MNIST-shaped random arrays
    python benchmarks/throughput.py --quick         # fewer examples and epochs

Models: an MLP (the zoo's `mlp` at its defaults: 2 x 64 ReLU) and LeNet-5 (the layer
plan below; the zoo row uses the `lenet5` plugin with tanh, average pooling and a full C3,
the same layers). Rows:
  zoo-<backend>[-option]  zoo.training.train (the `zoo train` path: data, callbacks,
                          checkpoints, backups) on that Keras backend
  keras-<backend>         the same model in a bare Keras script, model.fit on the arrays
  torch                   the same model in plain PyTorch on the CPU (needs torch)
Each row runs in its own process (one Keras backend per process). Throughput counts
training examples over the epochs after the first (which includes tracing/compiling),
validation included in every row, per wall-clock second and per second of the process's
CPU time (all threads; steadier than wall time on a shared VM whose speed swings).
Figures are printed with their ratios to bare Keras on the same backend and to PyTorch,
with the time each epoch spends in Keras's callback hooks. The rows run in `--rounds` interleaved rounds (the
order reversed every other round) and each row's figure is its median over the rounds, so
a slow drift of the machine's speed does not favour one row.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def arrays(n_train: int, n_val: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.random((n_train + n_val, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, n_train + n_val).astype("int64")
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def keras_model(kind: str):
    """The bare-Keras twin of the zoo model (same layers, same initialisers)."""
    import keras

    inputs = keras.Input((28, 28, 1))
    if kind == "mlp":
        x = keras.layers.Flatten()(inputs)
        x = keras.layers.Dense(64, activation="relu")(x)
        x = keras.layers.Dense(64, activation="relu")(x)
    else:  # LeNet-5 (LeCun et al. 1998) on 28x28 padded to the original's 32x32, as the zoo's input block does
        x = keras.layers.ZeroPadding2D(2)(inputs)
        x = keras.layers.Conv2D(6, 5, activation="tanh", name="c1")(x)
        x = keras.layers.AveragePooling2D(2, name="s2")(x)
        x = keras.layers.Conv2D(16, 5, activation="tanh", name="c3")(x)
        x = keras.layers.AveragePooling2D(2, name="s4")(x)
        x = keras.layers.Conv2D(120, 5, activation="tanh", name="c5")(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(84, activation="tanh", name="f6")(x)
    outputs = keras.layers.Dense(10, activation="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs)


HOOK_SECONDS = [0.0]  # time spent in Keras's callback hooks (see time_callback_hooks)
TIMERS: list = []


def _timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []  # (wall seconds, process CPU seconds) per epoch
            self.hook_marks = []  # HOOK_SECONDS at each epoch's start and at the end of training

        def on_epoch_begin(self, epoch, logs=None):
            self._t, self._cpu = time.perf_counter(), time.process_time()
            self.hook_marks.append(HOOK_SECONDS[0])

        def on_epoch_end(self, epoch, logs=None):
            self.times.append((time.perf_counter() - self._t, time.process_time() - self._cpu))

        def on_train_end(self, logs=None):
            self.hook_marks.append(HOOK_SECONDS[0])

    TIMERS.append(EpochTimer())
    return TIMERS[-1]


def run_keras(kind, args, **_):
    import keras

    (x, y), val = arrays(args.n, args.n_val)
    keras.utils.set_random_seed(0)
    model = keras_model(kind)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    timer = _timer()
    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, validation_data=val, verbose=0,
              callbacks=[timer])
    return timer.times


def run_zoo(kind, args, precision="auto", xla=None):
    from zoo.data import Dataset
    from zoo.registry import get_spec, names
    from zoo.spec import DataSpec
    from zoo.training import train

    model = {"mlp": "mlp", "lenet": "lenet5"}[kind]
    if model not in names():
        return None
    (x, y), val = arrays(args.n, args.n_val)
    spec = DataSpec("random-mnist", "classification", (28, 28, 1), num_classes=10, input_kind="image",
                    value_range=(0.0, 1.0), sizes={"train": len(x), "val": len(val[0]), "test": len(val[0])})
    dataset = Dataset(spec, {"train": (x, y), "val": val, "test": val}, batch_size=args.batch_size)
    timer = _timer()
    # lenet5 with plain tanh, average pooling and a full C3, the layer plan of the Keras and PyTorch twins
    # (its defaults, scaled tanh, trainable subsampling and the C3 connection table, cost more per step)
    hp = {"activation": "tanh", "pooling": "average", "c3_table": False} if model == "lenet5" else {}
    with tempfile.TemporaryDirectory() as runs:
        train(get_spec(model), dataset, runs_dir=runs, epochs=args.epochs, batch_size=args.batch_size, patience=0,
              verbose=0, callbacks=[timer], precision=precision, xla=xla, **hp)
    return timer.times


def run_torch(kind, args, threads=None, **_):
    import torch
    from torch import nn

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    (x, y), (xv, yv) = arrays(args.n, args.n_val)
    x, y, xv, yv = (torch.from_numpy(a) for a in (x.transpose(0, 3, 1, 2).copy(), y,
                                                   xv.transpose(0, 3, 1, 2).copy(), yv))
    if kind == "mlp":
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                              nn.Linear(64, 10))
    else:
        model = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5),
                              nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(),
                              nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loss_fn = nn.CrossEntropyLoss()
    times = []
    b = args.batch_size
    for _ in range(args.epochs):
        t, cpu = time.perf_counter(), time.process_time()
        model.train()
        for idx in torch.randperm(len(x)).split(b):
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(xv[i:i + b]).argmax(1) == yv[i:i + b]).sum()) for i in range(0, len(xv), b))
        assert 0 <= correct <= len(xv)
        times.append((time.perf_counter() - t, time.process_time() - cpu))
    return times


ROWS = {
    # name: (runner, keras backend, options)
    "zoo-tensorflow": ("zoo", "tensorflow", {}),
    "zoo-tensorflow-xla": ("zoo", "tensorflow", {"xla": True}),
    "zoo-tensorflow-bf16": ("zoo", "tensorflow", {"precision": "mixed_bfloat16"}),
    "keras-tensorflow": ("keras", "tensorflow", {}),
    "zoo-jax": ("zoo", "jax", {}),
    "keras-jax": ("keras", "jax", {}),
    "torch": ("torch", None, {}),
    # one intra-op thread: on a machine shared with other jobs, OpenMP's spinning barriers
    # make torch's default (one thread per core) two orders of magnitude slower (measured)
    "torch-1thread": ("torch", None, {"threads": 1}),
}


CALLBACK_HOOKS = ("on_epoch_begin", "on_epoch_end", "on_train_batch_begin", "on_train_batch_end",
                  "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end")


def time_callback_hooks() -> None:
    """Make Keras's CallbackList add the time of its hooks (everything `fit` runs besides
    the model's steps and the data: ours, Keras's and the zoo's callbacks) to HOOK_SECONDS."""
    import keras

    def timed(hook):
        def run(self, *a, **kw):
            t = time.perf_counter()
            try:
                return hook(self, *a, **kw)
            finally:
                HOOK_SECONDS[0] += time.perf_counter() - t
        return run

    for name in CALLBACK_HOOKS:
        setattr(keras.callbacks.CallbackList, name, timed(getattr(keras.callbacks.CallbackList, name)))


def run_pairs(kind, args):
    """`zoo train` and the bare Keras script alternately in this one process, `args.pairs`
    times each (the order swapped every other pair): the two runs of a pair share the
    process's memory layout and thread placement and the VM's speed at the time, which
    separate processes do not. Returns per pair the median steady epoch (wall, CPU) of each."""
    import keras

    pairs = []
    for r in range(args.pairs):
        pair = {}
        for name in ("zoo", "keras") if r % 2 == 0 else ("keras", "zoo"):
            if name == "keras" and keras.backend.backend() == "tensorflow":
                # the zoo's seeded runs turn TF op determinism on for the process; a bare script has it off
                from tensorflow.python.framework import config as tf_config

                tf_config.disable_op_determinism()
            times = (run_zoo if name == "zoo" else run_keras)(kind, args)
            steady = times[1:] or times
            pair[name] = [statistics.median(t for t, _ in steady), statistics.median(c for _, c in steady)]
        pairs.append(pair)
    return pairs


def step_ops(model) -> collections.Counter:
    """The operations of the model's compiled training step, by type and data type (TF) or
    by primitive and output shapes and dtypes (JAX): the TensorFlow graph of
    `train_function` with the functions it calls (the while loop's body), or the JAX jaxpr
    of `train_step` with its sub-jaxprs."""
    import keras

    counts: collections.Counter = collections.Counter()
    if keras.backend.backend() == "tensorflow":
        fn = model.train_function  # Keras wraps the tf.function in a closure
        tf_functions = [c.cell_contents for c in fn.__closure__ or ()
                        if hasattr(c.cell_contents, "_list_all_concrete_functions")]
        for concrete in (cf for f in tf_functions for cf in f._list_all_concrete_functions()):
            graph = concrete.graph.as_graph_def()
            nodes = [*graph.node, *(n for f in graph.library.function for n in f.node_def)]
            counts.update(f"{n.op}:{n.attr['T'].type}" if "T" in n.attr else n.op for n in nodes)
        return counts
    import jax
    import numpy as np

    state = model._get_jax_state(trainable_variables=True, non_trainable_variables=True,
                                 optimizer_variables=True, metrics_variables=True)
    batch = (np.zeros((8, *model.input_shape[1:]), "float32"), np.zeros((8,), "int64"))

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            counts[f"{eqn.primitive.name}:{','.join(str(v.aval) for v in eqn.outvars)}"] += 1
            for sub in jax.core.jaxprs_in_params(eqn.params):
                walk(sub)
    walk(jax.make_jaxpr(model.train_step)(state, batch).jaxpr)
    return counts


def compare_steps(kind, args) -> dict:
    """Fit the zoo model and its bare twin for one short epoch each and compare their
    compiled training steps op by op: equal steps do the same work per batch, so any
    throughput difference lies outside the step (callback hooks, data, the machine)."""
    import keras

    fitted = []
    fit = keras.Model.fit

    def keep(self, *a, **kw):  # every model fitted: the zoo's (as `train` fits it), then the twin
        fitted.append(self)
        return fit(self, *a, **kw)

    keras.Model.fit = keep
    try:
        small = argparse.Namespace(**{**vars(args), "n": 4 * args.batch_size, "n_val": args.batch_size, "epochs": 1})
        run_zoo(kind, small)
        run_keras(kind, small)
    finally:
        keras.Model.fit = fit
    zoo_ops, bare_ops = step_ops(fitted[0]), step_ops(fitted[-1])
    return {"zoo": sum(zoo_ops.values()), "bare": sum(bare_ops.values()),
            "only_zoo": dict(zoo_ops - bare_ops), "only_bare": dict(bare_ops - zoo_ops)}


def child(args) -> None:
    if args.graphs:
        print("RESULT " + json.dumps(compare_steps(args.model, args)))
        return
    if args.pairs:
        print("RESULT " + json.dumps(run_pairs(args.model, args)))
        return
    runner, _, options = ROWS[args.row]
    if runner != "torch":
        time_callback_hooks()
    times = {"zoo": run_zoo, "keras": run_keras, "torch": run_torch}[runner](args.model, args, **options)
    marks = TIMERS[-1].hook_marks if runner != "torch" and TIMERS else []
    # an epoch's hooks: from its start to the next epoch's start (its end-of-epoch writes included)
    hooks = [b - a for a, b in zip(marks, marks[1:])] or None
    print("RESULT " + json.dumps(times and {"times": times, "hook_seconds": hooks}))


def run_child(backend: str | None, model: str, args, *flags: str, timeout: float | None = None) -> tuple[object, str]:
    """Run this script's child mode (`flags` say which) on a Keras `backend` in its own
    process, within `timeout` seconds (None: no limit): its result, or None and why there is none."""
    if backend == "jax" and importlib.util.find_spec("jax") is None:
        return None, "jax not installed"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    if backend:
        env["KERAS_BACKEND"] = backend
    cmd = [sys.executable, __file__, "--child", *flags, "--model", model, "--n", str(args.n),
           "--n-val", str(args.n_val), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout}s"
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        return None, "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:120]
    return json.loads(lines[-1][7:]), ""


def measure(row: str, model: str, args) -> tuple[tuple[float, float, float | None] | None, str]:
    """(samples per wall second, samples per CPU second, median seconds per epoch in Keras's
    callback hooks), over the epochs after the first, of one row in its own process; or None and why."""
    runner, backend, _ = ROWS[row]
    if runner == "torch" and importlib.util.find_spec("torch") is None:
        return None, "torch not installed"
    result, why = run_child(backend, model, args, "--row", row, timeout=args.timeout)
    if why:
        return None, why
    if result is None:
        return None, "zoo plugin not installed"
    times, hooks = result["times"], result["hook_seconds"]
    steady = times[1:] or times
    return (args.n / statistics.median(t for t, _ in steady), args.n / statistics.median(c for _, c in steady),
            None if hooks is None else statistics.median(hooks[1:] or hooks)), ""


def backend_child(backend: str, model: str, args, *flags: str):
    """run_child's result (no time limit: a paired series runs many fits), or None after
    printing why there is none."""
    result, why = run_child(backend, model, args, *flags)
    if why:
        print(f"  {model} on {backend}: {why}")
        return None
    return result


def measure_pairs(backend: str, model: str, args) -> None:
    """Print the zoo's throughput relative to bare Keras, pair by pair, from one process
    (run_pairs): what the zoo adds, with the spread between processes taken out."""
    pairs = backend_child(backend, model, args, "--pairs", str(args.paired))
    if pairs is None:
        return
    wall = [p["keras"][0] / p["zoo"][0] for p in pairs]  # zoo samples/s over bare samples/s
    cpu = [p["keras"][1] / p["zoo"][1] for p in pairs]
    print(f"  {model} on {backend}: zoo/bare throughput per pair {', '.join(f'{w:.3f}' for w in wall)}")
    bare_epoch, zoo_epoch = (statistics.median(p[name][0] for p in pairs) for name in ("keras", "zoo"))
    print(f"  {'':{len(model) + len(backend) + 4}s}  median {statistics.median(wall):.3f} (wall), "
          f"{statistics.median(cpu):.3f} (CPU); bare epoch median {bare_epoch:.3f} s, zoo {zoo_epoch:.3f} s")


def print_step_comparison(backend: str, model: str, args) -> None:
    result = backend_child(backend, model, args, "--graphs")
    if result is None:
        return
    same = not result["only_zoo"] and not result["only_bare"]
    print(f"  {model} on {backend}: training step of `zoo train` {result['zoo']} ops, bare Keras {result['bare']} ops: "
          + ("the same ops" if same else f"differ: only zoo {result['only_zoo']}, only bare {result['only_bare']}"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="mlp,lenet")
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument("--n", type=int, default=12000, help="training examples")
    p.add_argument("--n-val", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--timeout", type=int, default=900)
    p.add_argument("--rounds", type=int, default=2, help="rounds of all rows; each row's figure is its median")
    p.add_argument("--quick", action="store_true", help="4000 examples, 3 epochs")
    p.add_argument("--paired", type=int, default=0, metavar="PAIRS",
                   help="instead of the rows: per model and backend, one process running `zoo train` and the bare "
                        "script alternately PAIRS times each; prints the zoo/bare ratio of each pair")
    p.add_argument("--graphs", action="store_true",
                   help="instead of the rows: per model and backend, compare the compiled training step of "
                        "`zoo train` with the bare script's, op by op")
    p.add_argument("--backends", default="tensorflow,jax", help="the backends of --paired and --graphs")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--pairs", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--row", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    if args.quick:
        args.n, args.n_val, args.epochs = 4000, 1000, 3
    print(f"# {args.n} training + {args.n_val} validation examples of 28x28x1, batch {args.batch_size}, "
          f"{args.epochs} epochs (first excluded), {os.cpu_count()} CPU cores; load average at start: "
          f"{os.getloadavg()[0]:.1f}")
    if args.graphs or args.paired:
        if args.paired:
            print("zoo/bare: the zoo's samples/s over bare Keras's (median steady epoch of each run), "
                  "both in one process, pair by pair")
        for model in args.models.split(","):
            for backend in args.backends.split(","):
                (print_step_comparison if args.graphs else measure_pairs)(backend, model, args)
        if args.paired:
            print(f"\n# load average at end: {os.getloadavg()[0]:.1f}")
        return
    rows = args.rows.split(",")
    for model in args.models.split(","):
        rates: dict[str, list[tuple[float, float, float | None]]] = {row: [] for row in rows}
        notes: dict[str, str] = {}
        for r in range(args.rounds):  # rows interleaved, order reversed every other round, against drift
            for row in rows if r % 2 == 0 else rows[::-1]:
                rate, note = measure(row, model, args)
                if rate is None:
                    notes[row] = note
                else:
                    rates[row].append(rate)
        # per row: medians over the rounds of samples per wall second, samples per CPU second, hook seconds
        results = {row: tuple(statistics.median(r[i] for r in rates[row]) if rates[row][0][i] is not None else None
                              for i in range(3)) for row in rows if rates[row]}
        if args.rounds > 1:
            print(f"\n{model}: samples/s per round: " + "; ".join(
                f"{row} {', '.join(f'{r[0]:,.0f}' for r in rates[row])}" for row in rows if rates[row]))
            for row in rows:  # each round's zoo row against that round's bare Keras row: drift cancels
                bare_row = f"keras-{ROWS[row][1]}"
                if row.startswith("zoo") and rates[row] and len(rates[row]) == len(rates.get(bare_row, [])):
                    paired = [z[0] / k[0] for z, k in zip(rates[row], rates[bare_row])]
                    print(f"  {row} / {bare_row} per round: {', '.join(f'{p:.3f}' for p in paired)}; "
                          f"median {statistics.median(paired):.3f}")
        torch_rate = results.get("torch", (None,))[0]
        torch_best = results.get("torch-1thread", (None,))[0]
        print(f"\n{model}: samples/s  vs bare Keras (same backend)  vs PyTorch  vs PyTorch 1 thread"
              f"  | samples/CPU-s  vs bare Keras | callback hooks ms/epoch (median)")
        for row in rows:
            if row not in results:
                print(f"  {row:22s} {'-':>9}   {notes.get(row, '')}")
                continue
            (rate, cpu_rate, hooks), backend = results[row], ROWS[row][1]
            bare = results.get(f"keras-{backend}") if not row.startswith("keras") else None
            vs_keras = f"{rate / bare[0]:6.3f}" if bare else "     -"
            vs_torch = f"{rate / torch_rate:6.3f}" if torch_rate else "     -"
            vs_torch += f"   {rate / torch_best:6.3f}" if torch_best else ""
            cpu_vs_keras = f"{cpu_rate / bare[1]:6.3f}" if bare else "     -"
            hooks = f"{hooks * 1000:8.1f}" if hooks is not None else "       -"
            print(f"  {row:22s} {rate:9.0f}   {vs_keras:>27}   {vs_torch:>9}   | {cpu_rate:9.0f}  {cpu_vs_keras}   | {hooks}")
    print(f"\n# load average at end: {os.getloadavg()[0]:.1f} (other jobs share this machine)")


if __name__ == "__main__":
    main()
