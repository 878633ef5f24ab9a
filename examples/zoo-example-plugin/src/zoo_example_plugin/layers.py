"""The RBF layer. Registered with Keras under this package's name so that a saved
model reloads (`zoo export`, `zoo serve`) once the plugin is imported."""

from __future__ import annotations

import math

import keras


@keras.saving.register_keras_serializable(package="zoo_example_plugin")
class GaussianRBF(keras.layers.Layer):
    """Gaussian radial basis units: phi_j(x) = exp(-||x - c_j||^2 / (2 sigma_j^2)).

    The centres c_j are weights (set by k-means before training, then learned);
    the widths sigma_j start at `sigma` and are learned when `learn_widths`.
    """

    def __init__(self, units: int, sigma: float = 1.0, learn_widths: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.units, self.sigma, self.learn_widths = int(units), float(sigma), bool(learn_widths)

    def build(self, input_shape):
        self.centers = self.add_weight(name="centers", shape=(self.units, int(input_shape[-1])),
                                       initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.log_sigma = self.add_weight(name="log_sigma", shape=(self.units,),
                                         initializer=keras.initializers.Constant(math.log(self.sigma)),
                                         trainable=self.learn_widths)

    def call(self, inputs):
        ops = keras.ops
        # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2, for every pair at once
        sq = (ops.sum(ops.square(inputs), axis=-1, keepdims=True)
              - 2.0 * ops.matmul(inputs, ops.transpose(self.centers))
              + ops.sum(ops.square(self.centers), axis=-1))
        return ops.exp(-ops.maximum(sq, 0.0) / (2.0 * ops.exp(2.0 * self.log_sigma)))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "sigma": self.sigma, "learn_widths": self.learn_widths}
