"""The `zoo` command. Its sub-commands come from the `zoo.commands` entry points
(the built-in ones declared in pyproject.toml like any plugin's); only the one
being run is imported, so `zoo list` never imports TensorFlow and a broken
command plugin leaves the others working.

User errors (ZooError) print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from zoo import scale
from zoo.commands import add_data_arguments, add_hp_arguments, command, data_options, hp_options, parse_sets
from zoo.commands import table as _table
from zoo.errors import PluginError, ZooError

__all__ = ["main", "parser", "command", "add_data_arguments", "add_hp_arguments", "data_options", "hp_options",
           "parse_sets"]


# --- list ------------------------------------------------------------------------


def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", help="glob on model names, e.g. 'resnet*'")
    p.add_argument("--task", help="classification, regression, reconstruction, sequence, ...")
    p.add_argument("--family", help="e.g. mlp, lenet, vgg, resnet")
    p.add_argument("--capability", help="e.g. pretraining, adversarial")
    p.add_argument("-l", "--long", action="store_true", help="load the specs and show family, tasks and summary")
    p.add_argument("--pretrained", action="store_true", help="list the weight presets: figure, size and source")


@command("list", _list_args)
def cmd_list(args: argparse.Namespace) -> int:
    """List registered models (from entry points; specs imported only for --long or a filter)."""
    from zoo import registry

    if args.pretrained:
        from zoo import presets

        print(_table(presets.rows(args.pattern), presets.COLUMNS))
        for problem in registry.load_all(args.pattern)[1]:
            print(f"warning: {problem}", file=sys.stderr)
        return 0
    filters = {"task": args.task, "family": args.family, "capability": args.capability}
    found = registry.entries()
    duplicates = [p for p in registry.problems() if "distributions" in p]
    if args.long or any(filters.values()):
        _, broken = registry.load_all(args.pattern)
        keep = set(registry.list_models(args.pattern, **filters))
        rows = []
        for name in registry.names(args.pattern):
            for entry in found[name]:  # a name two distributions register: each by its qualified name
                label = name if len(found[name]) == 1 else entry.qualified
                if label in keep:
                    s = registry.get_spec(label)
                    rows.append((label, s.family, ",".join(s.tasks), ",".join(sorted(s.all_capabilities)) or "-",
                                 entry.dist, s.summary))
        print(_table(rows, ("name", "family", "tasks", "capabilities", "from", "summary")))
    else:
        rows = [(n, ", ".join(e.dist for e in found[n]), ", ".join(e.version for e in found[n]))
                for n in registry.names(args.pattern)]
        print(_table(rows, ("name", "from", "version")))
        broken = []
    for problem in [str(b) for b in broken] + duplicates:
        print(f"warning: {problem}", file=sys.stderr)
    return 0


# --- info ------------------------------------------------------------------------


def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a registered model, or a run directory")
    p.add_argument("--dataset", help="count parameters for this dataset (default: the model's default dataset)")
    p.add_argument("--json", action="store_true", help="print JSON")
    scale.add_arguments(p)


def _run_info(run_dir: str, as_json: bool) -> int:
    """`zoo info RUN_DIR`: what a run trained, what its model takes, how it did."""
    from zoo.training import Run

    run = Run.load(run_dir, with_model=False)
    info = {"run": str(run.dir), "model": run.config["model"], "dataset": run.config["dataset"],
            "task": run.config.get("task"), "hyperparameters": run.hyperparameters,
            "inputs": run.expects(), "classes": list(run.data_spec.class_names or []) or None,
            "metrics": {k: v for k, v in run.metrics.items() if k.startswith(("test_", "baseline_"))}}
    if as_json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    for key in ("run", "model", "dataset", "task"):
        print(f"{key:16} {info[key]}")
    print(f"{'inputs':16} {info['inputs']}")
    if info["classes"]:
        print(f"{'classes':16} {', '.join(map(str, info['classes']))}")
    print(run.summary().split("\n", 1)[1])
    return 0


@command("info", _info_args)
def cmd_info(args: argparse.Namespace) -> int:
    """A model's spec, defaults, search space, parameter count and origin; or a run directory's model and figures."""
    from zoo import registry

    if os.path.isfile(os.path.join(args.model, "config.json")):
        return _run_info(args.model, args.json)
    spec = registry.get_spec(args.model)
    info = spec.describe()
    origin = registry.models.origin(args.model)
    info["from"] = f"{origin['distribution']} {origin['version']} ({origin['entry_point']})"
    dataset = args.dataset or spec.default_dataset
    if dataset:
        from zoo.data import load
        from zoo.training import build_model

        data_spec = load(dataset).spec
        spec.check_data(data_spec)
        model = build_model(spec, spec.resolve(), data_spec)
        info["parameters"] = {"dataset": dataset, "input_shape": list(data_spec.input_shape),
                              "count": int(model.count_params())}
    info["runtime"] = scale.describe_runtime(**scale.options(args))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key in ("name", "family", "summary", "tasks", "input_ranks", "capabilities", "default_dataset", "reference",
                "api_version", "from"):
        print(f"{key:16} {info[key]}")
    if "parameters" in info:
        p = info["parameters"]
        print(f"{'parameters':16} {p['count']:,} (on {p['dataset']}, input {tuple(p['input_shape'])})")
    print(f"{'runtime':16} {info['runtime']['summary']}")
    print("defaults:")
    for k, v in info["defaults"].items():
        print(f"  {k:18} {v}")
    print("search space:")
    for k, v in info["search_space"].items():
        print(f"  {k:18} {v}")
    from zoo import presets, recipes

    for line in recipes.describe(spec) + presets.describe(spec):
        print(line)
    return 0


# --- datasets --------------------------------------------------------------------


@command("datasets", lambda p: None)
def cmd_datasets(args: argparse.Namespace) -> int:
    """Datasets by name and URI scheme."""
    from zoo.data import catalog

    print(_table(catalog(), ("name", "task", "description", "from")))
    return 0


# --- train -----------------------------------------------------------------------


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model")
    add_data_arguments(p)
    add_hp_arguments(p)
    p.add_argument("--runs-dir", default="runs", help="where run directories go (default: runs/)")
    p.add_argument("--run-name", help="run directory name; re-running an interrupted run with it resumes")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--augment", metavar="NAMES",
                   help="image augmentation for training, e.g. flip,translation=0.1,rotation,zoom,contrast")
    p.add_argument("--from", dest="from_run", metavar="RUN_DIR",
                   help="start from this run's (or .keras file's) layers: transfer learning")
    p.add_argument("--freeze", metavar="N|all-but-head",
                   help="with --from or --weights: keep the first N weight layers, or all but the head, fixed")
    p.add_argument("--weights", metavar="PRESET|PATH",
                   help="start from a weight preset of the model (zoo list --pretrained) or a weights file "
                        "(.h5, .weights.h5, .keras, a run directory)")
    p.add_argument("--partial", action="store_true",
                   help="with --from or --weights: accept loading fewer than half of the weight layers")
    p.add_argument("--recipe", metavar="NAME", help="train with a recipe of the model, e.g. paper (zoo info MODEL)")
    p.add_argument("--callback", action="append", default=[], metavar="NAME[:KEY=VALUE,...]",
                   help="add a Keras callback from a zoo.callbacks plugin, e.g. reduce-lr-on-plateau:patience=2")
    from zoo.adversarial import add_train_arguments

    add_train_arguments(p)
    scale.add_arguments(p)


@command("train", _train_args)
def cmd_train(args: argparse.Namespace) -> int:
    """Train a model; prints the run directory and test metrics."""
    from zoo.adversarial import train_options
    from zoo.training import train

    if args.freeze and not (args.from_run or args.weights):
        raise ZooError("--freeze needs --from RUN_DIR or --weights PRESET|PATH (the layers to reuse)")
    run = train(args.model, args.dataset, runs_dir=args.runs_dir, run_name=args.run_name, callbacks=args.callback,
                tensorboard=args.tensorboard, verbose=0 if args.quiet else ("auto" if sys.stdout.isatty() else 2),
                augment=args.augment, from_run=args.from_run, freeze=args.freeze, weights=args.weights,
                partial=args.partial, recipe=args.recipe,
                **data_options(args), **hp_options(args), **train_options(args), **scale.options(args))
    if not run.config["distribution"]["chief"]:
        print(f"worker {run.config['distribution']['worker_index']}: worker 0 (the chief) writes the run directory")
    else:
        print(run.summary())
    return 0


# --- runs and compare -----------------------------------------------------------------


def _runs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", help="glob on run names, e.g. 'mlp-*'")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--tensorboard", metavar="DIR",
                   help="also write every listed run's history and hyperparameters as TensorBoard logs under DIR")


@command("runs", _runs_args)
def cmd_runs(args: argparse.Namespace) -> int:
    """List past runs: model, dataset, what changed from the defaults, test figure vs baseline, status, age."""
    import fnmatch

    from zoo import runs

    found = [r for r in runs.find(args.runs_dir) if not args.pattern or fnmatch.fnmatch(r.name, args.pattern)]
    if args.json:
        print(json.dumps([{"run": str(r.dir), "model": r.config.get("model"), "dataset": r.config.get("dataset"),
                           "changed": r.changed(), "status": r.status, "metrics": r.metrics} for r in found],
                         indent=2, default=str))
        return 0
    if not found:
        print(f"no runs in {args.runs_dir}" + (f" matching {args.pattern!r}" if args.pattern else ""))
        return 0
    print(_table(runs.table(found), ("run", "model", "dataset", "changed", "test", "baseline", "status", "age")))
    if args.tensorboard:
        out = runs.export_tensorboard(found, args.tensorboard)
        print(f"TensorBoard logs of {len(found)} runs: tensorboard --logdir {out}")
    return 0


def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR|MODEL",
                   help="two or more run directories; or, with --vary, one model to train a run per value")
    p.add_argument("--vary", action="append", default=[], metavar="NAME=V1,V2",
                   help="train one run per value (every combination when repeated), same seed, and compare them")
    p.add_argument("--metric", help="the curve to overlay (default val_accuracy, else val_loss)")
    p.add_argument("--out", help="the figure's path (default: compare.png in the runs' common folder)")
    add_data_arguments(p)
    add_hp_arguments(p)
    p.add_argument("--runs-dir", default="runs")


@command("compare", _compare_args)
def cmd_compare(args: argparse.Namespace) -> int:
    """Overlay runs' learning curves and tabulate what differs; with --vary, train the runs first."""
    from zoo import runs

    if args.vary:
        if len(args.runs) != 1:
            raise ZooError("with --vary give one model: zoo compare mlp -d digits --vary optimizer=sgd,adam")
        from zoo.data import check as check_dataset
        from zoo.registry import get_spec

        spec = get_spec(args.runs[0])
        variants = runs.vary_values(args.vary)
        for variant in variants:  # every value checked before the first run trains
            spec.resolve({**hp_options(args), **variant})
        check_dataset(args.dataset or spec.default_dataset or "", args.data_dir)
        found = runs.train_variants(spec.name, args.dataset, variants, args.runs_dir, print,
                                    **data_options(args), **hp_options(args))
    else:
        found = [runs.read(d) for d in args.runs]
        bad = [d for d, r in zip(args.runs, found) if r is None]
        if bad:
            raise ZooError(f"not a run directory (no config.json): {', '.join(bad)}")
    common = Path(os.path.commonpath([str(r.dir.resolve()) for r in found]))
    out = Path(args.out) if args.out else (common if common.is_dir() and common not in [r.dir.resolve() for r in found]
                                           else Path(args.runs_dir)) / "compare.png"
    path, rows = runs.compare(found, args.metric, out)
    diff = runs.differences(found)
    print(f"differences: {', '.join(diff) or 'none (same settings)'}")
    print(_table(rows, ("run", "settings", f"last {args.metric or 'val metric'}", "test", "baseline", "epochs",
                        "seconds")))
    print(f"figure: {path}")
    return 0


# --- the lab: lr-find, learning-curve -------------------------------------------------------


def _lr_find_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model")
    add_data_arguments(p)
    add_hp_arguments(p)
    p.add_argument("--steps", type=int, help="batches of the test (default: one epoch, at least 100)")
    p.add_argument("--start", type=float, default=1e-7, help="first learning rate (default 1e-7)")
    p.add_argument("--end", type=float, default=10.0, help="last learning rate (default 10)")
    p.add_argument("--runs-dir", default="runs")


@command("lr-find", _lr_find_args)
def cmd_lr_find(args: argparse.Namespace) -> int:
    """The learning-rate range test (Smith 2017): loss against an exponentially growing rate, and a suggestion."""
    from zoo.lab import lr_find

    hp = hp_options(args)
    hp.pop("learning_rate", None)
    options = data_options(args)
    result = lr_find(args.model, args.dataset, runs_dir=args.runs_dir, steps=args.steps, start=args.start,
                     end=args.end, **options, **hp)
    print(f"range test: {result['steps']} batches, {result['optimizer']}, rates {args.start:g} to "
          f"{result['rates'][-1]:.3g}")
    print(f"suggested learning rate: {result['suggested']:.3g} (steepest fall of the loss); "
          f"the minimum's rate / 10: {result['min_loss_rate_div10']:.3g}")
    print(f"figure: {Path(result['dir']) / 'lr_find.png'}")
    print(f"try: zoo train {args.model} --optimizer {result['optimizer']} --lr {result['suggested']:.2g}"
          + (f" -d {args.dataset}" if args.dataset else ""))
    return 0


def _learning_curve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model")
    add_data_arguments(p)
    add_hp_arguments(p)
    p.add_argument("--sizes", default="0.1,0.25,0.5,0.75,1.0",
                   help="shares of the training split to train on (default 0.1,0.25,0.5,0.75,1.0)")
    p.add_argument("--runs-dir", default="runs")


@command("learning-curve", _learning_curve_args)
def cmd_learning_curve(args: argparse.Namespace) -> int:
    """Train on growing shares of the training data; plot training, validation and test figures against its size."""
    from zoo.lab import learning_curve

    try:
        sizes = [float(v) for v in args.sizes.split(",") if v.strip()]
    except ValueError:
        raise ZooError(f"--sizes takes shares like 0.1,0.5,1.0, got {args.sizes!r}") from None
    options = data_options(args)
    options.pop("split", None), options.pop("limit", None)
    result = learning_curve(args.model, args.dataset, sizes=sizes, runs_dir=args.runs_dir, **options,
                            **hp_options(args))
    print(f"figure: {Path(result['dir']) / 'learning_curve.png'}")
    return 0


# --- entry point ------------------------------------------------------------------


def _commands(argv: Sequence[str]) -> dict:
    """The commands to build a parser for: only the one named in `argv` when it is
    registered, else all of them (for --help and for a misspelt name)."""
    from zoo import registry

    wanted = next((a for a in argv if not a.startswith("-")), None)
    names = registry.commands.names()
    if wanted is not None and (wanted in names or ":" in wanted):
        return {wanted: registry.commands.get(wanted)}
    if wanted is not None:
        raise ZooError(f"unknown command {wanted!r}." + _did_you_mean(wanted, names)
                       + " Run `zoo --help` to see them all.")
    loaded, broken = registry.commands.load_all()
    for problem in broken:
        print(f"warning: {problem}", file=sys.stderr)
    return {c.name: c for c in loaded}


def _did_you_mean(name: str, known) -> str:
    from zoo.errors import did_you_mean

    return did_you_mean(name, known)


def parser(commands: dict | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zoo", description="A Keras model zoo: list, train, tune, export and serve.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, cmd in sorted((commands if commands is not None else _commands([])).items()):
        sp = sub.add_parser(name, help=cmd.help.splitlines()[0] if cmd.help else "", description=cmd.help)
        cmd.add_arguments(sp)
        sp.set_defaults(run=cmd.run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from zoo import quiet

    args_in = list(sys.argv[1:] if argv is None else argv)
    quiet.install(verbose=int(any(a in ("-v", "-vv", "--verbose") for a in args_in)))
    try:
        commands = _commands(args_in)
    except ZooError as exc:
        print(f"zoo: error: {exc}", file=sys.stderr)
        return 2
    args = parser(commands).parse_args(args_in)
    try:
        code = int(args.run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not as a traceback at exit
        return code
    except ZooError as exc:
        print(f"zoo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `zoo list | head -2`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except ModuleNotFoundError as exc:
        backend = os.environ.get("KERAS_BACKEND", "")
        if exc.name and backend and exc.name.split(".")[0] == backend:
            print(f"zoo: error: KERAS_BACKEND={backend} but {exc.name.split('.')[0]} is not installed: "
                  f"pip install 'keras-zoo[{backend}]', or unset KERAS_BACKEND to use TensorFlow", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    # `python -m zoo.cli`: run the importable zoo.cli, where extension modules
    # (zoo.export, zoo.doctor, zoo.tuning.cli, ...) register their commands
    from zoo.cli import main as _main

    sys.exit(_main())
