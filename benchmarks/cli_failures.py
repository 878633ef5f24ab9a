"""How long `zoo` takes to refuse what it cannot do: a missing file, an unknown
dataset, model or command, a bad hyperparameter. Each is checked before TensorFlow
is imported, so the answer should come in well under a second (importing
TensorFlow alone takes about 7 s on this machine). Prints the median of --repeats
runs of each command, its exit status and its one line.

    python benchmarks/cli_failures.py
    python benchmarks/cli_failures.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = [
    ("missing CSV", ["train", "mlp", "-d", "csv:no-such-file.csv"]),
    ("unknown dataset", ["train", "mlp", "-d", "digitz"]),
    ("unknown scheme", ["train", "mlp", "-d", "foo:bar"]),
    ("unknown model", ["train", "mpl"]),
    ("bad hyperparameter", ["train", "mlp", "--set", "depth=two"]),
    ("unknown command", ["trian", "mlp"]),
    ("sweep: unknown objective", ["tune", "mlp", "--objective", "val_acuracy"]),
    ("sweep: missing space file", ["tune", "mlp", "--space-file", "no-such.toml"]),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    code = "import sys; from zoo.cli import main; sys.exit(main(sys.argv[1:]))"
    print(f"{'case':28} {'median s':>9}  exit  message")
    for label, argv in CASES:
        times, last = [], None
        for _ in range(args.repeats):
            start = time.perf_counter()
            last = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
            times.append(time.perf_counter() - start)
        message = (last.stderr.strip().splitlines() or [""])[-1]
        print(f"{label:28} {statistics.median(times):9.2f}  {last.returncode:4}  {message[:90]}")


if __name__ == "__main__":
    main()
