"""The plugin's Keras classes: the RBF layer and the mixup model. Registered with
Keras under this package's name; the specs name this module in `keras_modules`, so
the zoo imports it before loading a saved model (Run.load, transfer, export)."""

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


@keras.saving.register_keras_serializable(package="zoo_example_plugin")
class MixupModel(keras.Model):
    """A functional model whose training step trains on mixup pairs (Zhang et al.
    2018): inputs and one-hot targets mixed with lambda ~ Beta(alpha, alpha).

    A train_step that works with the zoo: compute the loss with `self.compute_loss`
    (it adds the layers' regularisation losses), scale it for mixed precision with
    `self.optimizer.scale_loss` before the gradients, and update the compiled
    metrics with `self.compute_metrics`, returning what it returns. The zoo compiles
    the model with its task's loss and metrics (sparse labels for classifiers):
    the mixed one-hot targets are compared by cross-entropy here, and the metrics
    see the first example's labels.
    """

    def __init__(self, *args, alpha: float = 0.2, **kwargs):
        super().__init__(*args, **kwargs)
        self.alpha = float(alpha)

    def train_step(self, data):
        import tensorflow as tf

        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        n = tf.shape(x)[0]
        classes = self.outputs[0].shape[-1]
        gamma1 = tf.random.gamma([n], self.alpha)
        gamma2 = tf.random.gamma([n], self.alpha)
        lam = gamma1 / (gamma1 + gamma2)
        order = tf.random.shuffle(tf.range(n))
        shape = tf.concat([[n], tf.ones(tf.rank(x) - 1, tf.int32)], 0)
        lx = tf.reshape(lam, shape)
        mixed = lx * x + (1 - lx) * tf.gather(x, order)
        labels = tf.reshape(tf.cast(y, tf.int32), [-1])
        if classes == 1:  # sigmoid output: a column of probabilities
            target = tf.cast(labels, x.dtype)[:, None]
            target = lam[:, None] * target + (1 - lam[:, None]) * tf.gather(target, order)
            loss_fn = keras.losses.BinaryCrossentropy()
        else:
            target = tf.one_hot(labels, classes)
            target = lam[:, None] * target + (1 - lam[:, None]) * tf.gather(target, order)
            loss_fn = keras.losses.CategoricalCrossentropy()
        with tf.GradientTape() as tape:
            pred = self(mixed, training=True)
            loss = loss_fn(target, pred) + tf.add_n(self.losses or [tf.constant(0.0)])
            scaled = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        return self.compute_metrics(x, y, self(x, training=False))

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}
