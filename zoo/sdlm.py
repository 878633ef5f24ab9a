"""LeCun et al. 1998's SDLM training as the paper ran it (Appendix C): an update after
every example, each weight's step eta / (mu + h_kk) with h_kk the Gauss-Newton diagonal of
the loss's second derivative, estimated on 500 examples before each pass.

- `PerExampleTrainer` wraps a classifier; its train_step takes a batch and updates the
  weights once per example inside one graph loop (Keras's `fit` with batches of 1 spends
  ~8 ms of overhead per step here; the loop ~1 ms per example).
- `gauss_newton_diagonal` estimates diag(J^T H J) without Jacobians: for random v with
  covariance H in the output space, E[(J^T v)^2] = diag(J^T H J). With the Euclidean RBF
  head, H is the MAP penalty's 2I on the F6 outputs (the squared distance to the right
  code); with a softmax it is diag(p) - pp^T, whose samples are the gradients of the
  cross-entropy at labels drawn from the model's own p (the Fisher matrix).
- `CurvatureEstimate` (a callback) re-estimates h before each pass, and every
  `first_pass_every` examples in the first pass, where the weights start small and h
  grows quickly (with one estimate from the initial weights, the paper's rates diverge).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.errors import ZooError

#: examples the curvature is averaged over (the paper's 500), and per gradient
CURVATURE_SAMPLES, CURVATURE_CHUNK = 500, 10

_CLASSES: dict[str, Any] = {}


def _rbf_layer(model):
    from zoo.layers import EuclideanRBF

    last = model.layers[-1]
    return last if isinstance(last, EuclideanRBF) else None


def check_model(model) -> None:
    """Refuse models whose output Hessian the estimate does not know."""
    if _rbf_layer(model) is not None:
        return
    activation = getattr(model.layers[-1], "activation", None)
    if getattr(activation, "__name__", "") != "softmax":
        raise ZooError("sdlm_curvature=gauss-newton needs a classifier ending in a softmax or the Euclidean RBF "
                       "outputs (--set output=rbf)")


def gauss_newton_diagonal(model, x, seed: int = 0) -> list:
    """Per-weight mean over the examples `x` of the Gauss-Newton diagonal (an unbiased
    estimate; see the module docstring), as tensors shaped like model.trainable_weights."""
    import tensorflow as tf

    fn = _estimator(model)
    total = None
    for start in range(0, len(x), CURVATURE_CHUNK):  # the noise of each chunk: stateless, seeded by (seed, start)
        squares = fn(tf.constant(x[start:start + CURVATURE_CHUNK]), tf.constant([seed, start], tf.int32))
        total = squares if total is None else [a + b for a, b in zip(total, squares)]
    return [t / float(len(x)) for t in total]


def _estimator(model):
    """A traced function (inputs, stateless seed pair) -> squared projected gradients, one per weight."""
    import keras
    import tensorflow as tf

    cached = getattr(model, "_zoo_gauss_newton", None)
    if cached is not None:
        return cached
    rbf = _rbf_layer(model)
    features = keras.Model(model.inputs, rbf.input) if rbf is not None else None
    weights = model.trainable_weights

    @tf.function
    def squares(x, seed):
        with tf.GradientTape() as tape:
            if features is not None:  # H = 2I on the RBF inputs: v ~ N(0, 2I)
                out = features(x, training=True)
                v = tf.random.stateless_normal(tf.shape(out), seed=seed) * np.sqrt(2.0)
                objective = tf.reduce_sum(tf.stop_gradient(v) * out)
            else:  # H = diag(p) - pp^T: cross-entropy gradients at labels drawn from p
                p = model(x, training=True)
                drawn = tf.random.stateless_categorical(tf.math.log(tf.maximum(p, 1e-30)), 1, seed=seed)[:, 0]
                objective = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(tf.stop_gradient(drawn), p))
        return [tf.square(g) for g in tape.gradient(objective, weights)]

    model._zoo_gauss_newton = squares
    return squares


def trainer_class():
    """PerExampleTrainer, defined on first use so this module imports no Keras."""
    if "trainer" in _CLASSES:
        return _CLASSES["trainer"]
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="zoo", name="PerExampleTrainer")
    class PerExampleTrainer(keras.Model):
        """Wraps a classifier; `fit` updates its weights after every example of each batch.
        Prediction and evaluation are the classifier's own; save `trainer.classifier`."""

        def __init__(self, classifier, **kwargs):
            super().__init__(**kwargs)
            self.classifier = classifier
            self.built = bool(getattr(classifier, "built", False))

        def call(self, inputs, training=False):
            return self.classifier(inputs, training=training)

        def train_step(self, data):
            x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
            weights = self.trainable_weights
            n = tf.shape(x)[0]
            predictions = tf.TensorArray(self.classifier.outputs[0].dtype, size=n)

            steps = self.optimizer.steps(weights)  # eta / (mu + h) per weight, fixed for the batch

            def body(i, total, predictions):
                with tf.GradientTape() as tape:
                    y_pred = self.classifier(x[i:i + 1], training=True)
                    loss = self.compute_loss(x=x[i:i + 1], y=y[i:i + 1], y_pred=y_pred, training=True)
                for weight, gradient, step in zip(weights, tape.gradient(loss, weights), steps):
                    weight.assign_sub(step * gradient)
                return i + 1, total + loss, predictions.write(i, y_pred[0])

            _, total, predictions = tf.while_loop(lambda i, *_: i < n, body,
                                                  (tf.constant(0), tf.constant(0.0), predictions))
            self.optimizer.iterations.assign_add(tf.cast(n, self.optimizer.iterations.dtype))
            tracker = getattr(self, "_loss_tracker", None)
            if tracker is not None:  # the mean loss of the examples, each before its own update
                tracker.update_state(total / tf.cast(n, total.dtype), sample_weight=n)
            return self.compute_metrics(x, y, predictions.stack(), sample_weight=None)

        def get_config(self):
            return {**super().get_config(), "classifier": keras.saving.serialize_keras_object(self.classifier)}

        @classmethod
        def from_config(cls, config, custom_objects=None):
            config = dict(config)
            classifier = keras.saving.deserialize_keras_object(config.pop("classifier"), custom_objects=custom_objects)
            return cls(classifier, **config)

    _CLASSES["trainer"] = PerExampleTrainer
    return PerExampleTrainer


def wrap(classifier):
    """The classifier wrapped for per-example updates."""
    check_model(classifier)
    return trainer_class()(classifier, name=f"per_example_{classifier.name}")


def curvature_callback(classifier, x_train: np.ndarray, batch_size: int, seed: int = 0,
                       samples: int = CURVATURE_SAMPLES, first_pass_every: int = 256):
    """A Keras callback that sets the SDLM optimizer's h from `samples` random training
    inputs before each epoch, and every `first_pass_every` examples in the first."""
    import keras

    class CurvatureEstimate(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.every = max(1, first_pass_every // max(1, batch_size))
            self.epoch = 0

        def estimate(self, batch: int):
            # the draw depends on (seed, epoch, batch) only: a resumed run estimates what the whole run did
            rng = np.random.default_rng([seed, self.epoch, batch])
            picked = rng.choice(len(x_train), min(samples, len(x_train)), replace=False)
            h = gauss_newton_diagonal(classifier, x_train[np.sort(picked)], seed=int(rng.integers(2**31)))
            self.model.optimizer.set_curvatures(classifier.trainable_weights, h)

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.estimate(0)

        def on_train_batch_begin(self, batch, logs=None):
            if self.epoch == 0 and batch and batch % self.every == 0:
                self.estimate(batch)

    return CurvatureEstimate()
