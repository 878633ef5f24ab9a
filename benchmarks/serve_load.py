"""Bounded load run against `zoo serve` on loopback.

Trains a small MLP (digits, 2 epochs) unless --root names an export root, starts
`zoo serve` on a free 127.0.0.1 port, then for batch-1 and batch-32 requests and
several numbers of concurrent clients (each with one keep-alive connection)
sends :predict requests for at most --seconds seconds or --max-requests requests
per scenario, and prints requests/s, examples/s, p50 and p99 latency. It also
times the same signature called in-process, so the server's overhead (HTTP,
JSON, threading) is the difference of the p50s.

    python benchmarks/serve_load.py                    # about a minute
    python benchmarks/serve_load.py --root saved_models --model mlp --clients 1,4
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

SERVER = "import sys; from zoo.cli import main; sys.exit(main(sys.argv[1:]))"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def prepare(args) -> tuple[Path, str]:
    if args.root:
        return Path(args.root), args.model
    from zoo.export import export_run
    from zoo.training import train

    tmp = Path(tempfile.mkdtemp(prefix="zoo-bench-"))
    run = train("mlp", "digits", runs_dir=tmp / "runs", verbose=0, epochs=2)
    export_run(run, out=tmp / "saved_models")
    print(f"trained mlp on digits: test accuracy {run.metrics.get('test_accuracy', float('nan')):.3f}")
    return tmp / "saved_models", "mlp"


def start_server(root: Path, threads: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, "serve", str(root), "--port", "0", "--threads",
                             str(threads)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("serving "):
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, line.split(" on ")[-1].strip()
    proc.kill()
    raise SystemExit("the server did not start")


def in_process(root: Path, model: str, x: np.ndarray, batch: int, n: int) -> list[float]:
    """Latencies (s) of the serving signature called directly, as the server does."""
    import tensorflow as tf

    from zoo.serve import resolve_saved_model

    loaded = tf.saved_model.load(str(resolve_saved_model(root / model)))
    sig = loaded.signatures["serving_default"]
    (name, spec), = sig.structured_input_signature[1].items()
    times = []
    for i in range(n + 5):
        rows = x[(i * batch) % len(x):][:batch]
        t = time.perf_counter()
        out = sig(**{name: tf.constant(rows, dtype=spec.dtype)})
        {k: v.numpy().tolist() for k, v in out.items()}
        if i >= 5:  # warm-up
            times.append(time.perf_counter() - t)
    return times


def load(url: str, model: str, x: np.ndarray, batch: int, clients: int, seconds: float,
         max_requests: int) -> dict:
    target = urlparse(url)
    path = f"/v1/models/{model}:predict"
    bodies = [json.dumps({"instances": x[(i * batch) % len(x):][:batch].tolist()}).encode() for i in range(16)]
    latencies: list[float] = []
    errors = [0]
    budget = [max_requests]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        i = k
        while time.monotonic() < stop_at:
            with lock:
                if budget[0] <= 0:
                    break
                budget[0] -= 1
            body = bodies[i % len(bodies)]
            i += clients
            t = time.perf_counter()
            try:
                conn.request("POST", path, body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                ok = resp.status == 200 and b"predictions" in data
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            elapsed = time.perf_counter() - t
            with lock:
                if ok:
                    latencies.append(elapsed)
                else:
                    errors[0] += 1
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return {"requests": len(latencies), "errors": errors[0], "rps": len(latencies) / wall,
            "eps": len(latencies) * batch / wall, "p50": percentile(latencies, 50) * 1e3,
            "p99": percentile(latencies, 99) * 1e3}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", help="an export root to serve (default: train and export a small MLP)")
    p.add_argument("--model", default="mlp")
    p.add_argument("--batches", default="1,32")
    p.add_argument("--clients", default="1,4,8")
    p.add_argument("--seconds", type=float, default=5.0, help="per scenario (default 5)")
    p.add_argument("--max-requests", type=int, default=3000, help="per scenario (default 3000)")
    p.add_argument("--threads", type=int, default=8, help="server threads")
    args = p.parse_args()

    root, model = prepare(args)
    meta = json.loads(next((root / model).glob("*/assets.extra/metadata.json")).read_text())
    shape = meta["signature"]["inputs"][next(iter(meta["signature"]["inputs"]))]["shape"][1:]
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 16, size=(256, *shape)).astype("float32")

    proc, url = start_server(root, args.threads)
    print(f"server {url}  (threads {args.threads}; machine: {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f})")
    try:
        rows = []
        for batch in [int(b) for b in args.batches.split(",")]:
            direct = in_process(root, model, x, batch, 300)
            d50, d99 = percentile(direct, 50) * 1e3, percentile(direct, 99) * 1e3
            for clients in [int(c) for c in args.clients.split(",")]:
                r = load(url, model, x, batch, clients, args.seconds, args.max_requests)
                rows.append((batch, clients, r, d50, d99))
        print(f"\n{'batch':>5} {'clients':>7} {'requests':>8} {'errors':>6} {'req/s':>8} {'examples/s':>10} "
              f"{'p50 ms':>8} {'p99 ms':>8} {'in-proc p50':>11} {'in-proc p99':>11} {'overhead p50':>12}")
        for batch, clients, r, d50, d99 in rows:
            print(f"{batch:>5} {clients:>7} {r['requests']:>8} {r['errors']:>6} {r['rps']:>8.1f} {r['eps']:>10.1f} "
                  f"{r['p50']:>8.2f} {r['p99']:>8.2f} {d50:>11.2f} {d99:>11.2f} {r['p50'] - d50:>12.2f}")
        print("\noverhead p50 = server p50 - in-process p50 of the same signature (ms); with several clients it "
              "includes queueing.")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        print(f"server stopped with status {code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
