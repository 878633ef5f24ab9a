"""An example keras-zoo plugin: a radial-basis-function network.

One hidden layer of Gaussian units around learned centres, then the zoo's output head
(softmax for classes, linear for regression). Broomhead & Lowe (1988) introduced the
network; Moody & Darken (1989) placed the centres by k-means on the inputs before
fitting the output weights, which the `pretrain` hook does here.

The spec module names the module that holds its Keras classes in `keras_modules`
instead of importing it: the zoo imports that module before it loads a saved model
(Run.load, transfer, export), and listing or filtering specs (`zoo list -l`) never
imports Keras.

A second model, `mixup-mlp`, trains with its own `train_step` (mixup, Zhang et al.
2018): see layers.MixupModel and docs/writing-a-plugin.md.
"""

from __future__ import annotations

from zoo.spec import Boolean, DataSpec, Float, Int, ModelSpec

DEFAULTS = {"centers": 32, "sigma": 1.0, "learn_widths": True, "kmeans_init": True,
            "learning_rate": 1e-2}  # overrides the zoo's training default

SEARCH_SPACE = {
    "centers": Int(4, 128, step=4),
    "sigma": Float(0.1, 10.0, sampling="log"),
    "learn_widths": Boolean(),
    "learning_rate": Float(1e-3, 1e-1, sampling="log"),
}


def build(hp, data_spec: DataSpec):
    """Flatten -> GaussianRBF(centers) -> output head."""
    import keras

    from zoo.layers import output_head
    from zoo_example_plugin.layers import GaussianRBF

    inputs = keras.Input(shape=data_spec.input_shape, name="features")
    x = keras.layers.Flatten(name="flatten")(inputs) if len(data_spec.input_shape) > 1 else inputs
    x = GaussianRBF(int(hp["centers"]), float(hp["sigma"]), bool(hp["learn_widths"]), name="rbf")(x)
    return keras.Model(inputs, output_head(x, data_spec), name="rbf_net")


def kmeans_centers(model, dataset, hp, run_dir) -> None:
    """Place the centres on k-means centroids of the training inputs (Moody & Darken)."""
    if not hp["kmeans_init"]:
        return
    from sklearn.cluster import KMeans

    x = dataset.arrays["train"][0].reshape(len(dataset.arrays["train"][0]), -1)
    layer = model.get_layer("rbf")
    centers = layer.centers.numpy()
    k = min(len(centers), len(x))
    centers[:k] = KMeans(k, n_init=3, random_state=0).fit(x).cluster_centers_
    layer.centers.assign(centers)


rbf_net = ModelSpec(
    name="rbf-net",
    family="rbf",
    summary="Radial-basis-function network: Gaussian units around k-means centres, linear output",
    tasks=("classification", "regression"),
    build=build,
    defaults=DEFAULTS,
    search_space=SEARCH_SPACE,
    input_ranks=(1, 2, 3),
    default_dataset="iris",
    reference="Broomhead & Lowe 1988; Moody & Darken 1989",
    pretrain=kmeans_centers,
    example_hyperparameters={"centers": 8},
    keras_modules=("zoo_example_plugin.layers",),  # GaussianRBF, imported before a saved model loads
)


# --- a model with its own train_step -------------------------------------------------------------


def build_mixup(hp, data_spec: DataSpec):
    """An MLP whose training step trains on mixed pairs of examples (MixupModel)."""
    import keras

    from zoo.layers import output_head
    from zoo_example_plugin.layers import MixupModel

    inputs = keras.Input(shape=data_spec.input_shape, name="features")
    x = keras.layers.Flatten(name="flatten")(inputs) if len(data_spec.input_shape) > 1 else inputs
    x = keras.layers.Dense(int(hp["units"]), activation="relu", name="dense1")(x)
    return MixupModel(inputs, output_head(x, data_spec), alpha=float(hp["alpha"]), name="mixup_mlp")


mixup_mlp = ModelSpec(
    name="mixup-mlp",
    family="mlp",
    summary="One-hidden-layer MLP trained with mixup (its own train_step)",
    tasks=("classification",),
    build=build_mixup,
    defaults={"units": 64, "alpha": 0.2},
    search_space={"units": Int(16, 256, step=16), "alpha": Float(0.05, 0.8, sampling="log")},
    input_ranks=(1, 2, 3),
    default_dataset="waves",
    reference="Zhang, Cisse, Dauphin & Lopez-Paz 2018 (mixup)",
    own_train_step=True,  # not "adversarial": zoo refuses --adversarial, which would replace mixup
    keras_modules=("zoo_example_plugin.layers",),
    example_hyperparameters={"units": 8},
)
