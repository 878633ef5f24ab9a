"""`zoo doctor`: what this installation can do, and which plugins work.

Reports the versions of Python and the libraries the zoo runs on, the devices
TensorFlow sees, whether mixed precision and XLA work here, and every installed
model plugin with its distribution, version and health. Exits 1 when a plugin is
broken or conflicts, so scripts and CI can use it. TensorFlow is imported only when
the command runs (this module is loaded by the CLI for every command).
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import platform
from typing import Any

from zoo.commands import command
from zoo.commands import table as _table

PACKAGES = ("keras-zoo", "tensorflow", "keras", "keras-tuner", "tensorflow-datasets", "numpy")


def versions() -> dict[str, str]:
    """Python and library versions ("not installed" when absent)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def devices() -> list[dict[str, Any]]:
    """Physical devices TensorFlow sees, with GPU compute capability when known."""
    import tensorflow as tf

    out = []
    for dev in tf.config.list_physical_devices():
        row: dict[str, Any] = {"type": dev.device_type, "name": dev.name}
        if dev.device_type == "GPU":
            details = tf.config.experimental.get_device_details(dev)
            row["description"] = details.get("device_name", "")
            if details.get("compute_capability"):
                row["compute_capability"] = ".".join(map(str, details["compute_capability"]))
        out.append(row)
    return out


def mixed_precision(found: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether mixed_float16 speeds training up here (a GPU of compute capability
    7.0 or more, Keras's own rule) and whether bfloat16 compute runs."""
    import keras
    import tensorflow as tf

    fast = [d for d in found if d["type"] == "GPU" and float(d.get("compute_capability", "0")) >= 7.0]
    out: dict[str, Any] = {
        "mixed_float16": bool(fast),
        "mixed_float16_note": (f"{len(fast)} GPU(s) with compute capability >= 7.0" if fast else
                               "no GPU with compute capability >= 7.0: runs, but slower than float32"),
    }
    try:
        keras.mixed_precision.Policy("mixed_bfloat16")
        x = tf.ones((4, 4), tf.bfloat16)
        out["mixed_bfloat16"] = bool(tf.reduce_all(tf.matmul(x, x) == 4.0))
        out["mixed_bfloat16_note"] = "bfloat16 matmul runs on the default device"
    except Exception as exc:  # a build without bfloat16 kernels
        out["mixed_bfloat16"], out["mixed_bfloat16_note"] = False, f"{type(exc).__name__}: {exc}"
    return out


def xla() -> dict[str, Any]:
    """Whether XLA compiles here: jit-compile and run a tiny function."""
    import tensorflow as tf

    try:
        fn = tf.function(lambda a: tf.reduce_sum(a * a), jit_compile=True)
        ok = float(fn(tf.constant([1.0, 2.0]))) == 5.0
        return {"available": ok, "note": "jit_compile=True ran a test function" if ok else "wrong result"}
    except Exception as exc:
        return {"available": False, "note": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}


def plugins() -> list[dict[str, Any]]:
    """Every entry point of every plugin group (models, datasets, commands,
    callbacks): loaded, broken (with the reason) or a conflict (two distributions)."""
    from zoo import registry
    from zoo.errors import PluginError

    rows = []
    for group, reg in registry.GROUPS.items():
        for name, found in sorted(reg.entries().items()):
            for entry in found:
                row = {"group": reg.what, "name": name, "model": name, "distribution": entry.dist,
                       "version": entry.version, "entry_point": entry.value}
                try:
                    reg.get(entry.qualified)
                    row.update(status="conflict" if len(found) > 1 else "loaded",
                               reason=f"use {entry.qualified}" if len(found) > 1 else "")
                except PluginError as exc:
                    row.update(status="broken", reason=str(exc))
                rows.append(row)
    return rows


def stale_exports(root: str = "saved_models") -> list[str]:
    """Temporary version folders under the export root left by killed exports (the
    next `zoo export` of that model removes them)."""
    from zoo.export import stale_temp_dirs

    return [str(p) for p in stale_temp_dirs(root)]


def diagnose(export_root: str = "saved_models") -> dict[str, Any]:
    """The full report `zoo doctor` prints."""
    found = devices()
    return {"versions": versions(), "devices": found, "mixed_precision": mixed_precision(found), "xla": xla(),
            "plugins": plugins(), "stale_exports": stale_exports(export_root)}


def _doctor_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--export-root", default="saved_models", help="where to look for stale export folders")


@command("doctor", _doctor_args)
def cmd_doctor(args: argparse.Namespace) -> int:
    """Versions, devices, mixed precision / XLA support and plugin health (exit 1 if a plugin is broken)."""
    report = diagnose(args.export_root)
    unhealthy = [p for p in report["plugins"] if p["status"] == "broken"]
    if args.json:
        print(json.dumps(report, indent=2))
        return 1 if unhealthy else 0
    print("versions")
    for k, v in report["versions"].items():
        print(f"  {k:22} {v}")
    print("devices")
    for d in report["devices"]:
        extra = " ".join(filter(None, [d.get("description"), d.get("compute_capability") and
                                       f"(compute capability {d['compute_capability']})"]))
        print(f"  {d['type']:5} {d['name']} {extra}".rstrip())
    if not any(d["type"] == "GPU" for d in report["devices"]):
        print("  GPU   none")
    mp, x = report["mixed_precision"], report["xla"]
    print("acceleration")
    print(f"  {'mixed_float16':22} {'yes' if mp['mixed_float16'] else 'no'}: {mp['mixed_float16_note']}")
    print(f"  {'mixed_bfloat16':22} {'yes' if mp['mixed_bfloat16'] else 'no'}: {mp['mixed_bfloat16_note']}")
    print(f"  {'XLA':22} {'yes' if x['available'] else 'no'}: {x['note']}")
    print("plugins")
    rows = [(p["group"], p["name"], p["distribution"], p["version"], p["status"]) for p in report["plugins"]]
    print("\n".join("  " + line for line in _table(rows, ("kind", "name", "distribution", "version",
                                                            "status")).splitlines()))
    for name, reason in dict.fromkeys((p["name"], p["reason"]) for p in report["plugins"] if p["reason"]):
        print(f"  {name}: {reason}")
    if report["stale_exports"]:
        print("stale exports (left by killed exports; the next `zoo export` of the model removes them)")
        for path in report["stale_exports"]:
            print(f"  {path}")
    return 1 if unhealthy else 0
