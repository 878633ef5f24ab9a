"""`zoo doctor`: versions, devices, acceleration and plugin health."""

from __future__ import annotations

import importlib.metadata as md
import json

import pytest

from zoo import registry
from zoo.cli import main
from zoo.testing import write_dist_info


@pytest.fixture
def broken_plugin(tmp_path, monkeypatch):
    write_dist_info(tmp_path, "zoo-ghost", "0.3", {"ghost": "zoo_ghost_module:spec"})
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.clear_cache()
    yield
    registry.clear_cache()


def doctor(capsys, *args: str) -> tuple[int, str]:
    rc = main(["doctor", *args])
    return rc, capsys.readouterr().out


def test_json_report(capsys):
    rc, out = doctor(capsys, "--json")
    report = json.loads(out)
    assert report["versions"]["tensorflow"] == md.version("tensorflow")
    assert report["versions"]["keras-tuner"] == md.version("keras-tuner")
    assert report["versions"]["tensorflow-datasets"] == md.version("tensorflow-datasets")
    assert any(d["type"] == "CPU" for d in report["devices"])
    assert isinstance(report["xla"]["available"], bool) and report["xla"]["note"]
    assert isinstance(report["mixed_precision"]["mixed_float16"], bool)
    plugins = {(p["group"], p["name"]): p for p in report["plugins"]}
    for group, reg in registry.GROUPS.items():  # every entry point of every group
        assert {n for g, n in plugins if g == reg.what} == set(reg.names())
    assert plugins["model", "mlp"] | {"reason": ""} == {
        "group": "model", "name": "mlp", "model": "mlp", "distribution": "keras-zoo",
        "version": md.version("keras-zoo"), "entry_point": "zoo.plugins.mlp:mlp", "status": "loaded", "reason": ""}
    assert plugins["dataset", "iris"]["entry_point"] == "zoo.data.builtin:iris"
    assert plugins["command", "train"]["status"] == "loaded"
    assert rc == (0 if all(p["status"] != "broken" for p in plugins.values()) else 1)


def test_broken_plugin_is_reported_and_sets_the_exit_status(capsys, broken_plugin):
    rc, out = doctor(capsys, "--json")
    ghost = next(p for p in json.loads(out)["plugins"] if p["model"] == "ghost")
    assert rc == 1
    assert ghost["status"] == "broken" and ghost["distribution"] == "zoo-ghost" and ghost["version"] == "0.3"
    assert "No module named 'zoo_ghost_module'" in ghost["reason"]
    rc, text = doctor(capsys)
    assert rc == 1
    row = next(line.split() for line in text.splitlines() if line.strip().startswith("model     ghost "))
    assert row == ["model", "ghost", "zoo-ghost", "0.3", "broken"]
    assert "ghost: plugin 'ghost' from zoo-ghost 0.3" in text


def test_text_report(capsys):
    _, out = doctor(capsys)
    sections = [line for line in out.splitlines() if line and not line.startswith(" ")]
    assert sections == ["versions", "devices", "acceleration", "plugins"]
    assert f"tensorflow             {md.version('tensorflow')}" in out
    assert "XLA" in out and "mixed_float16" in out
