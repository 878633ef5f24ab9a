"""The conformance kit itself: it passes a good model and fails bad ones with a
message naming the model, the check and the reason."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from zoo.spec import Choice, Float, Int, ModelSpec, PluginSpecInvalid
from zoo.testing import CHECKS, ConformanceError, check, conformance_tests, example_data, sample_point

SPACE = {"units": Int(2, 8), "learning_rate": Float(1e-3, 1e-1, sampling="log")}


def _dense(hp, data_spec, *, units=None, scale=None, kernel=None):
    import keras

    from zoo.layers import output_head

    inputs = keras.Input(shape=data_spec.input_shape, name="features")
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = keras.layers.Dense(int(hp["units"]), activation="relu", name="hidden",
                           kernel_initializer=kernel or "glorot_uniform")(x)
    if scale is not None:
        x = keras.layers.Rescaling(scale, name="scale")(x)
    if units is not None:
        return keras.Model(inputs, keras.layers.Dense(units, activation="softmax", name="output")(x))
    return keras.Model(inputs, output_head(x, data_spec))


def good(hp, data_spec):
    return _dense(hp, data_spec)


def wrong_width(hp, data_spec):
    return _dense(hp, data_spec, units=5)


def nan_outputs(hp, data_spec):
    import keras

    return _dense(hp, data_spec, kernel=keras.initializers.Constant(float("nan")))


def frozen(hp, data_spec):
    """Every gradient is exactly zero: a step changes nothing."""
    model = _dense(hp, data_spec, scale=0.0)
    model.get_layer("output").trainable = False
    return model


def own_train_step(hp, data_spec):
    """A family with its own train_step (adversarial, RBM): the kit runs it traced, as fit does."""
    import keras
    import tensorflow as tf

    class OwnStep(keras.Model):
        def train_step(self, data):
            if tf.executing_eagerly():
                raise RuntimeError("the plugin's train_step ran eagerly")
            return super().train_step(data)

    plain = _dense(hp, data_spec)
    return OwnStep(plain.inputs, plain.outputs)


def compiled(hp, data_spec):
    model = _dense(hp, data_spec)
    model.compile(optimizer="sgd", loss="mse")
    return model


def logits(hp, data_spec):
    """A classifier without its output activation, hidden behind a last layer that is not Dense."""
    import keras

    inputs = keras.Input(shape=data_spec.input_shape, name="features")
    x = keras.layers.Dense(data_spec.output_units, name="scores")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Rescaling(1.0, name="output")(x))


def unregistered(hp, data_spec):
    """A custom layer Keras cannot find when the model is reloaded elsewhere."""
    import keras

    class Doubling(keras.layers.Layer):  # not registered with keras.saving.register_keras_serializable
        def call(self, x):
            return 2.0 * x

    model = _dense(hp, data_spec)
    return keras.Model(model.inputs, Doubling(name="doubling")(model.outputs[0]))


def refuses(hp, data_spec):
    raise ValueError("this model needs at least 64x64 images")


def spec(name: str, build=good, **fields) -> ModelSpec:
    args = {"family": "test", "summary": "a test model", "tasks": ("classification", "regression"),
            "build": build, "defaults": {"units": 4}, "search_space": SPACE, "input_ranks": (1, 3)}
    return ModelSpec(name=name, **{**args, **fields})


def failure(model, name: str, **options) -> str:
    with pytest.raises(ConformanceError) as info:
        check(model, name, **options)
    return str(info.value)


@pytest.mark.parametrize("name", [c if c != "reload" else pytest.param(c, marks=pytest.mark.slow) for c in CHECKS])
def test_good_model_passes(name):  # reload (a fresh process, ~10 s) is shown failing fast below
    check(spec("good"), name)


def test_good_model_passes_for_regression_and_on_images():
    s = spec("good")
    check(s, "forward", task="regression")
    check(s, "train_step", input_shape=(6, 6, 3))


def test_a_plugins_own_train_step_runs_traced():
    check(spec("ownstep", own_train_step, own_train_step=True), "train_step")


def test_wrong_output_shape_names_model_check_and_shapes():
    msg = failure(spec("wide", wrong_width), "forward")
    assert msg.startswith("conformance[wide] forward: output shape (8, 5) != declared (8, 3)"), msg


def test_nan_outputs_are_reported():
    msg = failure(spec("nanny", nan_outputs), "forward")
    assert msg.startswith("conformance[nanny] forward:") and "NaN/inf" in msg, msg


def test_a_step_that_changes_no_weight_fails():
    msg = failure(spec("frozen", frozen), "train_step")
    assert msg.startswith("conformance[frozen] train_step: one training step changed no weight"), msg


def test_build_errors_say_which_check():
    assert failure(spec("refuses", refuses), "build_default").startswith(
        "conformance[refuses] build_default: model 'refuses' cannot be built")
    assert "64x64" in failure(spec("refuses", refuses), "build_sampled")


def test_empty_search_space_fails():
    msg = failure(spec("rigid", search_space={}), "search_space")
    assert msg == "conformance[rigid] search_space: the search space is empty; declare what `zoo tune` may vary"


def test_default_outside_its_search_space_fails_the_spec_check():
    msg = failure(spec("odd", defaults={"units": 40, "act": "relu"},
                       search_space={**SPACE, "act": Choice("tanh", "elu")}), "spec")
    assert "default units=40 lies outside its search space (int 2..8)" in msg
    assert "default act='relu' lies outside its search space" in msg


def test_export_check_without_export_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "zoo.export", None)  # import zoo.export now fails
    msg = failure(spec("good"), "export")
    assert msg.startswith("conformance[good] export: export module not available"), msg


def test_unregistered_name_fails_clearly():
    msg = failure("no-such-model", "spec")
    assert msg.startswith("conformance[no-such-model] spec: cannot load the model: ZooError: unknown model")


def test_example_data_follows_the_spec():
    images = example_data(spec("img", input_ranks=(3,)))
    assert images.x.shape == (8, 28, 28, 1) and images.data_spec.input_kind == "image"
    assert images.raw_x.max() > 1 and 0 <= images.x.min() and images.x.max() <= 1
    seq = example_data(spec("seq", input_ranks=(2,)))
    assert seq.x.shape == (8, 12, 4)
    np.testing.assert_allclose(seq.x.mean(axis=0), 0, atol=1e-5)
    cifar = example_data(spec("c", input_ranks=(3,), default_dataset="cifar10"))
    assert cifar.x.shape == (8, 32, 32, 3)
    small = example_data(spec("s", input_ranks=(3,), example_input_shape=(16, 16, 3)))
    assert small.x.shape == (8, 16, 16, 3)
    ae = example_data(spec("ae", tasks=("reconstruction",), input_ranks=(1,)))
    assert ae.task == "reconstruction" and ae.expected_output_shape == (8, 8)
    reg = example_data(spec("r"), task="regression")
    assert reg.y.shape == (8, 2) and reg.expected_output_shape == (8, 2)


def test_spec_validates_its_example_fields():
    with pytest.raises(PluginSpecInvalid, match="example_input_shape"):
        spec("bad", input_ranks=(3,), example_input_shape=(8,))
    with pytest.raises(PluginSpecInvalid, match="example_hyperparameters names \\['widht'\\]"):
        spec("bad", example_hyperparameters={"widht": 2})


def test_example_hyperparameters_are_used():
    seen = []

    def build(hp, data_spec):
        seen.append(hp["units"])
        return good(hp, data_spec)

    check(spec("small", build, example_hyperparameters={"units": 3}), "forward")
    assert seen == [3, 3]  # built once per declared task (classification, regression)


def flat_reconstruction(hp, data_spec):
    import keras

    inputs = keras.Input(shape=data_spec.input_shape)
    x = keras.layers.Flatten()(inputs)
    units = int(np.prod(data_spec.input_shape))
    return keras.Model(inputs, keras.layers.Dense(units, activation="sigmoid")(x))


def test_reconstruction_has_the_input_shape_or_is_flat():
    ae = spec("flat-ae", flat_reconstruction, tasks=("reconstruction",), input_ranks=(3,))
    check(ae, "forward", input_shape=(4, 4, 1))
    msg = failure(spec("bad-ae", wrong_width, tasks=("reconstruction",), input_ranks=(3,)), "forward",
                  input_shape=(4, 4, 1))
    assert "output shape (8, 5) != declared (8, 4, 4, 1) (reconstruction" in msg, msg


def test_log_sampled_ints_declare_into_keras_tuner():
    s = spec("logint", defaults={"units": 4}, search_space={"units": Int(2, 64, sampling="log")})
    check(s, "search_space")
    assert all(2 <= sample_point(s, seed)["units"] <= 64 for seed in range(5))


def test_sampled_point_is_seeded_and_in_the_space():
    s = spec("good")
    points = [sample_point(s, seed) for seed in range(6)]
    assert sample_point(s, 3) == points[3]
    assert all(2 <= p["units"] <= 8 and 1e-3 <= p["learning_rate"] <= 1e-1 for p in points)
    assert len({p["units"] for p in points}) > 1


def test_conformance_tests_parametrises_models_by_checks():
    fn = conformance_tests("mlp", spec("good"), checks=("spec", "forward"))
    params = fn.pytestmark[0].args[1]
    assert [p.id for p in params] == ["mlp-spec", "mlp-forward", "good-spec", "good-forward"]
    with pytest.raises(ValueError, match="unknown conformance checks"):
        conformance_tests("mlp", checks=("fwd",))
    fn = conformance_tests("mlp", "perceptron", checks=("spec", "forward"),
                           overrides={"mlp": {"checks": ("spec",), "marks": {"spec": pytest.mark.slow},
                                              "hyperparameters": {"units": 4}}})
    params = fn.pytestmark[0].args[1]
    assert [p.id for p in params] == ["mlp-spec", "perceptron-spec", "perceptron-forward"]
    assert params[0].marks[0].name == "slow" and params[0].values[2] == {"hyperparameters": {"units": 4}}
    assert not params[1].marks


# the one-line use a third party writes, on a spec object
test_one_liner = conformance_tests(spec("oneliner"), checks=("spec", "forward", "train_step"))


# --- the rules a plugin author most often breaks, each caught with its fix -------------------------


def test_a_compiled_build_is_refused_with_the_fix():
    msg = failure(spec("compiled", compiled), "build_default")
    assert "build returned a compiled model" in msg and "remove model.compile" in msg


def test_a_classifier_must_output_probabilities():
    msg = failure(spec("logits", logits, tasks=("classification",)), "forward")
    assert "outputs must be probabilities" in msg and "softmax" in msg


def test_every_declared_task_is_checked():
    """A build that only works for classification fails as a regression model too."""
    def classifier_only(hp, data_spec):
        import keras

        inputs = keras.Input(shape=data_spec.input_shape)
        x = keras.layers.Flatten()(inputs)
        return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="output")(x))

    msg = failure(spec("both", classifier_only), "forward")
    assert "(as a regression model)" in msg and "output shape (8, 3) != declared (8, 2)" in msg


def test_an_unregistered_custom_layer_fails_the_reload_with_the_decorator_to_add():
    msg = failure(spec("unregistered", unregistered, tasks=("classification",)), "reload")
    assert "does not load in a fresh process" in msg and "register_keras_serializable" in msg
    assert "Doubling" in msg


def test_an_undeclared_own_train_step_is_named():
    msg = failure(spec("undeclared", own_train_step, tasks=("classification",)), "train_step")
    assert "declare own_train_step=True" in msg


def test_a_plugin_that_fails_to_load_is_reported_once():
    from zoo.testing import run_checks

    results = run_checks("no-such-model-anywhere")
    failures = [r for r in results.values() if r and not r.startswith("skipped")]
    assert len(failures) == 1 and "no-such-model-anywhere" in failures[0]
    assert all(r.startswith("skipped") for name, r in results.items() if r not in failures)
