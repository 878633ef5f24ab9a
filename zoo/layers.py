"""Building blocks shared by model families: activations by name and output heads.

Every activation of the teaching material is reachable by name, including the
ones Keras has as layers (PReLU, LeakyReLU) or lacks (maxout).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from zoo.errors import ZooError, did_you_mean
from zoo.spec import DataSpec

#: activation functions Keras provides by name
_FUNCTIONS = ("sigmoid", "tanh", "relu", "elu", "selu", "softsign", "softplus", "swish", "silu", "mish", "gelu", "linear")
#: activations that are layers: leaky_relu (slope 0.01, Maas et al. 2013), prelu (learned slope)
_LAYERS = {"leaky_relu": lambda name: keras.layers.LeakyReLU(negative_slope=0.01, name=name),
           "prelu": lambda name: keras.layers.PReLU(name=name)}
ACTIVATIONS = (*_FUNCTIONS, *_LAYERS, "maxout")


@keras.saving.register_keras_serializable(package="zoo")
class Maxout(keras.layers.Layer):
    """Maxout units (Goodfellow et al. 2013): max over `pieces` affine pieces.

    Used as a hidden layer on its own (it is both the affine map and the
    activation), so `Dense(units) + activation` becomes `Maxout(units, pieces)`.
    """

    def __init__(self, units: int, pieces: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.units, self.pieces = int(units), int(pieces)

    def build(self, input_shape):
        self.dense = keras.layers.Dense(self.units * self.pieces, name="pieces")
        self.dense.build(input_shape)

    def call(self, inputs):
        z = self.dense(inputs)
        z = keras.ops.reshape(z, (-1, self.units, self.pieces))
        return keras.ops.max(z, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "pieces": self.pieces}


@keras.saving.register_keras_serializable(package="zoo")
class FanInUniform(keras.initializers.Initializer):
    """Uniform in +-limit / fan_in (LeCun et al. 1998, Appendix C: limit 2.4, so that
    the weighted sums fall in the squashing function's range). Keras's lecun_uniform is
    +-sqrt(3 / fan_in) (LeCun et al. 1998b, Efficient BackProp), another rule."""

    def __init__(self, limit: float = 2.4, seed=None):
        self.limit, self.seed = float(limit), seed
        self._generator = keras.random.SeedGenerator(seed) if seed is not None else None

    def __call__(self, shape, dtype=None):
        fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else int(shape[0])
        bound = self.limit / max(1, fan_in)
        return keras.random.uniform(shape, -bound, bound, dtype=dtype, seed=self._generator)

    def get_config(self):
        return {"limit": self.limit, "seed": self.seed}


@keras.saving.register_keras_serializable(package="zoo")
class EuclideanRBF(keras.layers.Layer):
    """LeNet-5's output layer (LeCun et al. 1998, section II.B and eq. 9): one unit per
    class with a fixed code c_i (+-1 entries); unit i's penalty is y_i = ||x - c_i||^2.

    Returns softmax(-y), the posterior over the classes, so prediction, evaluation and
    serving treat it as any classifier. Trained with sparse cross-entropy on that output,
    the layer's own added loss softplus(-j - logsumexp(-y)) completes the paper's MAP
    criterion: y_D + log(e^-j + sum_i e^-y_i) = CE(softmax(-y), D) + softplus(-j - logsumexp(-y)).
    The codes are not trained (the paper fixes them).
    """

    def __init__(self, codes, j: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        self.codes = np.asarray(codes, dtype="float32")
        self.j = float(j)

    def call(self, x):
        codes = ops.convert_to_tensor(self.codes, dtype=x.dtype)
        distances = (ops.sum(ops.square(x), axis=-1, keepdims=True) - 2.0 * ops.matmul(x, ops.transpose(codes))
                     + ops.sum(ops.square(codes), axis=-1))
        scores = ops.negative(distances)
        self.add_loss(ops.mean(ops.softplus(-self.j - ops.logsumexp(scores, axis=-1))))
        return ops.softmax(scores, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], int(self.codes.shape[0]))

    def get_config(self):
        return {**super().get_config(), "codes": self.codes.tolist(), "j": self.j}


def check_activation(name: str) -> None:
    if name not in ACTIVATIONS:
        raise ZooError(f"unknown activation {name!r}." + did_you_mean(name, ACTIVATIONS)
                       + f" Known: {', '.join(ACTIVATIONS)}.")


def dense_block(x, units: int, activation: str, name: str, *, kernel_initializer="glorot_uniform",
                kernel_regularizer=None, maxout_pieces: int = 2):
    """Dense layer followed by the named activation (maxout replaces both)."""
    check_activation(activation)
    if activation == "maxout":
        return Maxout(units, maxout_pieces, name=name)(x)
    if activation in _LAYERS:
        x = keras.layers.Dense(units, kernel_initializer=kernel_initializer,
                               kernel_regularizer=kernel_regularizer, name=name)(x)
        return _LAYERS[activation](f"{name}_{activation}")(x)
    return keras.layers.Dense(units, activation=activation, kernel_initializer=kernel_initializer,
                              kernel_regularizer=kernel_regularizer, name=name)(x)


def activation_layer(name: str, layer_name: str | None = None) -> keras.layers.Layer:
    """A stand-alone activation layer by name (for conv nets: conv, norm, act)."""
    check_activation(name)
    if name == "maxout":
        raise ZooError("maxout is a dense layer of its own; use it in dense layers only")
    if name in _LAYERS:
        return _LAYERS[name](layer_name)
    return keras.layers.Activation(name, name=layer_name)


def regularizer(l1: float = 0.0, l2: float = 0.0):
    """An L1/L2 weight penalty, or None when both are zero."""
    if l1 < 0 or l2 < 0:
        raise ZooError(f"l1 and l2 must be >= 0, got l1={l1}, l2={l2}")
    return keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None


def output_head(x, data_spec: DataSpec, name: str = "output", **dense_kwargs):
    """The output layer a task needs: sigmoid for binary, softmax for multi-class
    classification, linear for regression (kept in float32 under mixed precision).

    Regression predicts standardised targets and un-standardises them with the
    training split's statistics, so the model speaks the targets' own units.
    """
    units = data_spec.output_units
    if data_spec.task == "classification":
        activation = "sigmoid" if units == 1 else "softmax"
        return keras.layers.Dense(units, activation=activation, dtype="float32", name=name, **dense_kwargs)(x)
    stats = data_spec.preprocessing.get("target")
    if data_spec.task != "regression" or not stats:
        return keras.layers.Dense(units, dtype="float32", name=name, **dense_kwargs)(x)
    z = keras.layers.Dense(units, dtype="float32", name=f"{name}_standardized", **dense_kwargs)(x)
    std = [float(s) for s in stats["std"]]
    return keras.layers.Normalization(mean=stats["mean"], variance=[s * s for s in std], invert=True,
                                      dtype="float32", name=name)(z)
