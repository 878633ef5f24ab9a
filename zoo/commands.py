"""Writing `zoo` sub-commands: the `command` decorator and the argument helpers
the built-in commands share. A command module depends on this and the core,
never on zoo.cli: commands reach the CLI through the `zoo.commands` entry points.

    from zoo.commands import command

    def _args(p):
        p.add_argument("model")

    @command("hello", _args)
    def cmd_hello(args):
        \"\"\"Say hello to a model.\"\"\"
        print("hello", args.model)

and in pyproject.toml: [project.entry-points."zoo.commands"] hello = "mypkg.cli:cmd_hello".
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from zoo.errors import ZooError
from zoo.spec import Command


def command(name: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Make `fn(args)` the sub-command `name`: the function keeps working as a
    function and carries its zoo.spec.Command as `fn.command`."""
    def wrap(fn):
        fn.command = Command(name=name, add_arguments=add_arguments, run=fn, help=(fn.__doc__ or "").strip())
        return fn
    return wrap


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """Rows under a header, in columns."""
    rows = [list(map(str, r)) for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def parse_sets(pairs: Sequence[str]) -> dict[str, str]:
    """--set key=value pairs into a dict (values parsed later by the spec)."""
    out = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise ZooError(f"--set takes key=value, got {pair!r}")
        out[key.strip()] = value
    return out


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", "-d", help="name or URI (csv:PATH, npz:PATH, images:DIR); default: the model's")
    p.add_argument("--data-dir", help="local data directory (default $ZOO_DATA_DIR or ~/.zoo/data)")
    p.add_argument("--target", help="csv: the label column (default: the last)")
    p.add_argument("--split", help="train,val,test fractions, e.g. 0.7,0.15,0.15")
    p.add_argument("--limit", type=int, help="use at most this many training examples")
    p.add_argument("--seed", type=int, default=0)


def data_options(args: argparse.Namespace) -> dict:
    """train()/tune() keyword arguments from the data arguments."""
    split = None
    if args.split:
        try:
            split = tuple(float(v) for v in args.split.split(","))
        except ValueError:
            raise ZooError(f"--split takes three fractions like 0.7,0.15,0.15, got {args.split!r}") from None
    options = {"seed": args.seed, "data_dir": args.data_dir, "split": split, "limit": args.limit}
    if args.target:
        options["dataset_options"] = {"target": args.target}
    return options


def add_hp_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--optimizer", help="sgd, momentum, nesterov, adagrad, rmsprop, adadelta, adam")
    p.add_argument("--lr", type=float, help="learning rate (default: the optimizer's own)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any hyperparameter, e.g. --set depth=3 --set activation=tanh")


def hp_options(args: argparse.Namespace) -> dict:
    hp = parse_sets(args.set)
    for key, value in (("epochs", args.epochs), ("batch_size", args.batch_size), ("optimizer", args.optimizer),
                       ("learning_rate", args.lr)):
        if value is not None:
            hp[key] = value
    return hp
