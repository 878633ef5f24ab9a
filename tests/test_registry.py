"""The registry: entry points listed without imports, plugins isolated, names checked."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import zoo
from zoo import registry
from zoo.errors import PluginError, ZooError


def _fake_distribution(root: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """A distribution's metadata and modules on a sys.path folder, as pip would leave them."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[zoo.models]\n{lines}\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))


GOOD_SPEC = """
from zoo.spec import ModelSpec
def build(hp, data_spec):
    raise RuntimeError("not built in these tests")
{var} = ModelSpec(name={name!r}, family="fake", summary="a fake model", tasks=("classification",),
                 build=build, capabilities={{"pretraining"}})
"""


@pytest.fixture
def fake_plugins(tmp_path, monkeypatch):
    _fake_distribution(
        tmp_path, "fake-plugins",
        {"fakegood": "fake_good:spec", "fakebroken": "fake_broken:spec", "fakenotspec": "fake_notspec:obj",
         "mlp": "fake_dup:spec", "fakeoldapi": "fake_old:spec"},
        {"fake_good": GOOD_SPEC.format(var="spec", name="fakegood"),
         "fake_broken": "import a_module_that_does_not_exist\n",
         "fake_notspec": "obj = 42\n",
         "fake_dup": GOOD_SPEC.format(var="spec", name="mlp"),
         "fake_old": GOOD_SPEC.format(var="spec", name="fakeoldapi").replace(
             'capabilities={"pretraining"}', 'capabilities={"pretraining"}, api_version=99')},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.clear_cache()
    yield tmp_path
    registry.clear_cache()
    for mod in ("fake_good", "fake_broken", "fake_notspec", "fake_dup", "fake_old"):
        sys.modules.pop(mod, None)


def test_builtins_are_entry_points():
    found = registry.entries()
    assert {"mlp", "perceptron"} <= set(found)
    assert found["mlp"][0].dist == "keras-zoo"
    assert zoo.get_spec("mlp").family == "mlp"


def test_listing_imports_neither_plugins_nor_tensorflow():
    code = ("import sys, zoo; names = zoo.list_models(); assert 'mlp' in names, names; "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules, 'zoo.plugins.mlp' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]


def test_field_filters_load_specs_without_tensorflow():
    code = ("import sys, zoo; print(zoo.list_models(task='regression', family='mlp')); "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "['mlp', 'perceptron']"
    assert out[1] == "False"


def test_filters():
    assert zoo.list_models("perc*") == ["perceptron"]
    assert "mlp" in zoo.list_models(task="classification")
    assert zoo.list_models(family="mlp", capability="pretraining") == []  # known values, no model has both
    with pytest.raises(ZooError, match="unknown task 'no-such-task'"):
        zoo.list_models(task="no-such-task")
    with pytest.raises(ZooError, match="unknown family 'resmpl'. Did you mean: resnet"):
        zoo.list_models(family="resmpl")


def test_unknown_name_suggests():
    with pytest.raises(ZooError, match=r"unknown model 'mpl'.*Did you mean: mlp"):
        zoo.get_spec("mpl")


def test_broken_plugins_are_isolated(fake_plugins):
    specs, broken = registry.load_all()
    names = {s.name for s in specs}
    assert "fakegood" in names and "perceptron" in names
    reasons = {b.entry.name: b.error for b in broken}
    assert "a_module_that_does_not_exist" in reasons["fakebroken"]
    assert "fake-plugins 1.0" in reasons["fakebroken"]
    assert "int, not a zoo.spec.ModelSpec" in reasons["fakenotspec"]
    assert "spec API version 99" in reasons["fakeoldapi"]
    # the good ones still work, the broken one fails with its reason
    assert zoo.get_spec("fakegood").capabilities == {"pretraining"}
    with pytest.raises(PluginError, match="fakebroken.*fake-plugins 1.0.*a_module_that_does_not_exist"):
        zoo.get_spec("fakebroken")
    # built-in families may have the capability too (dbn, autoencoders): look at the fake ones only;
    # the fake distribution's own "mlp" is listed by its qualified name (the bare name is taken twice)
    assert [n for n in zoo.list_models(capability="pretraining") if n.startswith("fake")] == [
        "fakegood", "fake-plugins:mlp"]


def test_duplicate_names_name_both_distributions(fake_plugins):
    with pytest.raises(PluginError, match=r"'mlp' is registered by 2 distributions") as err:
        zoo.get_spec("mlp")
    assert "keras-zoo:mlp (keras-zoo 0.1.0" in str(err.value) and "fake-plugins:mlp (fake-plugins 1.0" in str(err.value)
    assert "mlp" not in zoo.list_models()
    assert any("fake-plugins:mlp" in p for p in registry.problems())
    # qualified names pick one distribution each: both models stay usable
    assert zoo.get_spec("keras-zoo:mlp").family == "mlp" and zoo.get_spec("fake-plugins:mlp").family == "fake"
    assert zoo.get_spec("Fake_Plugins:mlp").family == "fake"  # distribution names compare as pip compares them
    with pytest.raises(ZooError, match=r"no model 'mlp' from a distribution 'nope'; installed: .*keras-zoo:mlp"):
        zoo.get_spec("nope:mlp")
