"""Time the conformance kit on every registered model (or the ones named).

    python benchmarks/conformance_times.py [MODEL ...]

Prints one row per model: seconds per check and the failures, so a slow model
(a big ImageNet variant) can be given example_input_shape / example_hyperparameters
or a per-model override in tests/test_conformance.py.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv: list[str]) -> int:
    import zoo
    from zoo.testing import CHECKS, ConformanceError, check

    models = argv or zoo.list_models()
    print(f"{'model':24}" + "".join(f"{c:>15}" for c in CHECKS) + f"{'total':>9}")
    failures = []
    for model in models:
        times = []
        for name in CHECKS:
            started = time.perf_counter()
            try:
                check(model, name)
                mark = ""
            except ConformanceError as exc:
                failures.append(str(exc))
                mark = "!"
            times.append((time.perf_counter() - started, mark))
        cells = "".join(f"{t:>14.2f}{m or ' '}" for t, m in times)
        print(f"{model:24}{cells}{sum(t for t, _ in times):>9.2f}")
    for failure in failures:
        print(failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
