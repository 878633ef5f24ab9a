"""LeNet-5, VGG and ResNet: the published architectures layer for layer (exact
parameter counts at 224x224x3 / 1000 classes), the input block, and that each
family trains through the one training path.

Published counts: keras.applications (VGG16/19, ResNet50/101/152 with
weights=None, total parameters, convolutions with bias), torchvision (resnet18/34
and resnet50: trainable parameters, convolutions without bias; vgg11/13), He et
al. 2015 Table 6 (CIFAR ResNets, in millions), LeCun et al. 1998 (LeNet-5:
C1 156, S2 12, C3 1,516, S4 32, C5 48,120, F6 10,164, + a 84x10 softmax layer).
"""

from __future__ import annotations

import numpy as np
import pytest

import zoo
from zoo.errors import ZooError

IMAGENET = {"input_shape": (224, 224, 3), "num_classes": 1000}
CIFAR = {"input_shape": (32, 32, 3), "num_classes": 10}


def trainable(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def shapes(model) -> list[tuple[int, ...]]:
    """Every layer's weight shapes, in order: the architecture layer for layer."""
    return [tuple(w.shape) for layer in model.layers for w in layer.weights]


# --- LeNet-5 -------------------------------------------------------------------


def test_lenet5_has_the_papers_layer_plan_and_parameters():
    model = zoo.build("lenet5", input_shape=(32, 32, 1), num_classes=10)
    params: dict[str, int] = {}
    for layer in model.layers:  # C3 is three convolutions (fan-in 3, 4 and 6) joined by a concatenation
        if layer.trainable_weights:
            key = layer.name.split("_")[0]
            params[key] = params.get(key, 0) + sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
    assert params == {"c1": 156, "s2": 12, "c3": 1516, "s4": 32, "c5": 48120, "f6": 10164, "output": 850}
    assert trainable(model) == 60850
    assert model.get_layer("c3").output.shape[1:] == (10, 10, 16)
    assert model.get_layer("c5").output.shape[1:] == (1, 1, 120)
    slope, tanh, amplitude = (model.get_layer(f"c1_scaled_tanh{s}") for s in ("_slope", "_tanh", ""))
    f = np.asarray(amplitude(tanh(slope(np.array([1.0, -1.0, 0.0], "float32")))))
    np.testing.assert_allclose(f, [1.0, -1.0, 0.0], atol=1e-3)  # A tanh(S a) with f(1) = 1, f(-1) = -1


def test_lenet5_pads_28x28_to_the_32x32_plan_and_takes_colour():
    mnist = zoo.build("lenet5", input_shape=(28, 28, 1), num_classes=10)
    assert mnist.get_layer("pad").output.shape[1:] == (32, 32, 1)
    assert trainable(mnist) == 60850
    colour = zoo.build("lenet5", input_shape=(32, 32, 3), num_classes=10)
    assert colour.get_layer("c1").count_params() == 5 * 5 * 3 * 6 + 6
    modern = zoo.build("lenet5_modern", input_shape=(28, 28, 1), num_classes=10)
    assert modern.count_params() == 156 + 2416 + 48120 + 10164 + 850
    kinds = {type(layer).__name__ for layer in modern.layers}
    assert {"MaxPooling2D", "Dropout"} <= kinds and "Rescaling" not in kinds


def test_lenet5_c3_follows_the_connection_table():
    import keras

    from zoo.plugins.lenet import C3_TABLE, table_conv

    inputs = keras.Input((10, 10, 6))
    layer = keras.Model(inputs, table_conv(inputs, C3_TABLE, 5, "c3"))
    for conv in layer.layers:
        if conv.trainable_weights:
            conv.set_weights([np.ones(conv.kernel.shape, "float32"), np.zeros(conv.bias.shape, "float32")])
    assert sum(int(np.prod(w.shape)) for w in layer.trainable_weights) == 60 * 25 + 16
    for i in range(6):  # feed one S2 map at a time: only the C3 maps connected to it respond
        x = np.zeros((1, 10, 10, 6), "float32")
        x[..., i] = 1.0
        out = np.asarray(layer(x))[0, 0, 0]
        connected = [j for j, maps in enumerate(C3_TABLE) if i in maps]
        assert np.flatnonzero(out).tolist() == connected
        assert np.allclose(out[connected], 25.0)


def test_lenet5_saves_and_reloads_without_custom_objects(tmp_path):
    import keras

    model = zoo.build("lenet5", input_shape=(28, 28, 3), num_classes=10, channels=1)  # with rgb_to_grey
    x = np.random.default_rng(0).random((2, 28, 28, 3)).astype("float32")
    model.save(tmp_path / "lenet.keras")
    again = keras.saving.load_model(tmp_path / "lenet.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


# --- VGG -----------------------------------------------------------------------


def test_vgg16_is_keras_applications_vgg16_layer_for_layer():
    import keras

    ours = zoo.build("vgg16", **IMAGENET)
    reference = keras.applications.VGG16(weights=None)
    assert ours.count_params() == reference.count_params() == 138_357_544
    assert shapes(ours) == shapes(reference)
    assert [layer.name for layer in ours.layers if "conv" in layer.name and layer.weights] == \
        [layer.name for layer in reference.layers if "conv" in layer.name]


@pytest.mark.slow
@pytest.mark.parametrize("name,count", [("vgg11", 132_863_336), ("vgg13", 133_047_848), ("vgg19", 143_667_240)])
def test_vgg_configurations_have_the_published_counts(name, count):
    assert zoo.build(name, **IMAGENET).count_params() == count


def test_vgg_compact_head_for_small_images():
    model = zoo.build("vgg11", input_shape=(28, 28, 1), num_classes=10, width=0.125)
    assert model.get_layer("pad").output.shape[1:] == (32, 32, 1)
    assert model.get_layer("block5_pool").output.shape[1:] == (1, 1, 64)
    assert model.get_layer("fc1").units == 64  # 512 x width
    bn = zoo.build("vgg11_bn", input_shape=(32, 32, 3), num_classes=10, width=0.125)
    assert len([layer for layer in bn.layers if layer.name.endswith("_bn")]) == 8
    deeper = zoo.build("vgg11", input_shape=(32, 32, 3), num_classes=10, width=0.125, depth=19)
    assert len([layer for layer in deeper.layers if type(layer).__name__ == "Conv2D"]) == 16
    with pytest.raises(ZooError, match="depth"):
        zoo.build("vgg11", input_shape=(32, 32, 3), num_classes=10, depth=12)


# --- ResNet --------------------------------------------------------------------


def test_resnet50_is_keras_applications_resnet50_layer_for_layer():
    import keras

    ours = zoo.build("resnet50", conv_bias=True, **IMAGENET)
    reference = keras.applications.ResNet50(weights=None)
    assert ours.count_params() == reference.count_params() == 25_636_712
    assert shapes(ours) == shapes(reference)
    assert trainable(zoo.build("resnet50", **IMAGENET)) == 25_557_032  # torchvision: no conv bias


def test_resnet18_has_torchvisions_count():
    model = zoo.build("resnet18", **IMAGENET)
    assert trainable(model) == 11_689_512
    assert model.get_layer("conv5_block2_out").output.shape[1:] == (7, 7, 512)


@pytest.mark.slow
@pytest.mark.parametrize("name,conv_bias,count", [
    ("resnet34", False, 21_797_672),  # torchvision, trainable
    ("resnet101", True, 44_707_176),  # keras.applications.ResNet101, total
    ("resnet152", True, 60_419_944),  # keras.applications.ResNet152, total
])
def test_deeper_resnets_have_the_published_counts(name, conv_bias, count):
    model = zoo.build(name, conv_bias=conv_bias, **IMAGENET)
    assert (model.count_params() if conv_bias else trainable(model)) == count


@pytest.mark.slow
def test_resnet101_and_152_match_keras_applications_layer_for_layer():
    import keras

    for name, ref in (("resnet101", keras.applications.ResNet101), ("resnet152", keras.applications.ResNet152)):
        assert shapes(zoo.build(name, conv_bias=True, **IMAGENET)) == shapes(ref(weights=None))


@pytest.mark.parametrize("name,millions", [
    ("resnet20", 0.27), pytest.param("resnet32", 0.46, marks=pytest.mark.slow),
    pytest.param("resnet44", 0.66, marks=pytest.mark.slow), ("resnet56", 0.85)])
def test_cifar_resnets_have_the_papers_counts(name, millions):
    model = zoo.build(name, **CIFAR)
    assert round(trainable(model) / 1e6, 2) == millions
    convs = [layer for layer in model.layers if layer.name.endswith("_conv")]
    assert len(convs) + 1 == int(name[6:])  # 6n+2 weight layers: convolutions + the classifier
    assert model.get_layer("avg_pool").input.shape[1:] == (8, 8, 64)


@pytest.mark.slow
def test_resnet110_has_the_papers_count():
    assert round(trainable(zoo.build("resnet110", **CIFAR)) / 1e6, 1) == 1.7


def test_shortcut_options_a_b_c():
    def count(option):
        return trainable(zoo.build("resnet20", shortcut=option, **CIFAR))

    a, b = count("A"), count("B")
    projections_b = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)  # two 1x1 convs + batch norm where the shape changes
    assert b - a == projections_b
    model = zoo.build("resnet20", **CIFAR)
    assert model.get_layer("conv3_block1_0_pad").output.shape[1:] == (16, 16, 32, 1)
    c = zoo.build("resnet20", shortcut="C", width=0.25, **CIFAR)
    assert len([layer for layer in c.layers if layer.name.endswith("_0_conv")]) == 9  # every block projects
    with pytest.raises(ZooError, match="6n\\+2"):
        zoo.build("resnet20", depth=21, **CIFAR)


def test_input_block_converts_channels_and_resizes():
    grey_to_rgb = zoo.build("resnet20", input_shape=(8, 8, 1), num_classes=10, width=0.25, channels=3)
    assert grey_to_rgb.get_layer("resize").output.shape[1:] == (32, 32, 3)
    assert grey_to_rgb.get_layer("conv1_conv").kernel.shape == (3, 3, 3, 4)
    rgb_to_grey = zoo.build("lenet5", input_shape=(32, 32, 3), num_classes=10, channels=1)
    x = np.random.default_rng(0).random((1, 32, 32, 3)).astype("float32")
    import keras

    grey = keras.Model(rgb_to_grey.input, rgb_to_grey.get_layer("rgb_to_grey").output)
    np.testing.assert_allclose(np.asarray(grey(x))[..., 0], x @ np.array([0.299, 0.587, 0.114], "float32"),
                               rtol=1e-5)
    bigger = zoo.build("resnet18", input_shape=(28, 28, 1), num_classes=10, width=0.125, input_size=64)
    assert bigger.get_layer("resize").output.shape[1:] == (64, 64, 1)


# --- every family trains through zoo.train ---------------------------------------


@pytest.mark.parametrize("name,options", [
    ("lenet5", {"epochs": 2}),
    ("vgg11", {"epochs": 1, "width": 0.125}),
    ("resnet20", {"epochs": 1, "width": 0.25}),
])
def test_family_trains_on_the_offline_default_dataset(name, options, runs_dir):
    from zoo.training import train

    run = train(name, runs_dir=runs_dir, verbose=0, limit=400, **options)
    assert run.config["dataset"] == "digits"
    assert run.metrics["status"] == "completed"
    assert np.isfinite(run.metrics["test_loss"])
    assert run.model.input_shape[1:] == (8, 8, 1)
    for report in ("confusion_matrix.png", "confusion_matrix.json", "misclassified.png", "filters.png"):
        assert (run.dir / report).exists(), report  # zoo.diagnostics ran for this image classifier
    if name == "lenet5":
        assert run.metrics["test_accuracy"] > run.metrics["baseline_test_accuracy"] + 0.2
