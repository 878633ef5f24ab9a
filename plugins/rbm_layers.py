"""Restricted Boltzmann machines as Keras objects, and greedy layer-wise stacking.

`RBM` is a layer holding the weights and the energy function (Bernoulli or
Gaussian visible units, Bernoulli or Gaussian hidden units); called on visible
vectors it returns the hidden means, the feature transform. `RBMModel` is a
functional Keras model whose `train_step` runs contrastive divergence (CD-k,
Hinton 2002) or persistent CD (Tieleman 2008), so `fit` with callbacks, progress
bars and checkpoints trains it like any other model. `train_stack` does the
greedy layer-wise pretraining of Hinton, Osindero & Teh (2006).

This module imports Keras at module level so that loading a saved `.keras` file
finds the registered classes once the plugin is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from zoo.errors import ZooError
from zoo.plugins.pretraining import STEPS_PER_EXECUTION

UNIT_TYPES = ("bernoulli", "gaussian")


def _check_units(kind: str, which: str) -> str:
    if kind not in UNIT_TYPES:
        raise ZooError(f"RBM {which} units must be one of {', '.join(UNIT_TYPES)}, got {kind!r}")
    return kind


@keras.saving.register_keras_serializable(package="zoo")
class RBM(keras.layers.Layer):
    """A restricted Boltzmann machine: weights, biases and its energy function.

    Energy with Bernoulli visible and hidden units:
        E(v, h) = -v.b - h.c - v W h
    Gaussian visible units (unit variance, for standardised data) replace -v.b
    by |v - b|^2 / 2; Gaussian hidden units (the linear code layer of Hinton &
    Salakhutdinov 2006) add |h|^2 / 2. Training settings (cd_k, persistent,
    weight_decay) live here too, because CD is how this layer learns.
    """

    def __init__(self, units: int, visible: str = "bernoulli", hidden: str = "bernoulli", cd_k: int = 1,
                 persistent: bool = False, n_chains: int = 64, weight_decay: float = 0.0,
                 sample_visible: bool = False, init_stddev: float = 0.01, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if int(units) < 1 or int(cd_k) < 1 or int(n_chains) < 1:
            raise ZooError(f"RBM needs units >= 1, cd_k >= 1 and n_chains >= 1; got {units}, {cd_k}, {n_chains}")
        if float(weight_decay) < 0:
            raise ZooError(f"RBM weight_decay must be >= 0, got {weight_decay}")
        self.units = int(units)
        self.visible = _check_units(visible, "visible")
        self.hidden = _check_units(hidden, "hidden")
        self.cd_k = int(cd_k)
        self.persistent = bool(persistent)
        self.n_chains = int(n_chains)
        self.weight_decay = float(weight_decay)
        self.sample_visible_states = bool(sample_visible)
        self.init_stddev = float(init_stddev)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        n = int(input_shape[-1])
        self.kernel = self.add_weight(shape=(n, self.units), name="kernel",
                                      initializer=keras.initializers.RandomNormal(stddev=self.init_stddev,
                                                                                  seed=self.seed))
        self.hidden_bias = self.add_weight(shape=(self.units,), initializer="zeros", name="hidden_bias")
        self.visible_bias = self.add_weight(shape=(n,), initializer="zeros", name="visible_bias")
        if self.persistent:
            # the fantasy particles of persistent CD: visible states carried across updates
            self.chains = self.add_weight(shape=(self.n_chains, n), initializer="zeros", trainable=False,
                                          name="chains")

    # --- conditionals and sampling ---------------------------------------------------

    def hidden_input(self, v):
        return ops.matmul(v, self.kernel) + self.hidden_bias

    def hidden_mean(self, v):
        """E[h | v]: the hidden probabilities (the features) or Gaussian means."""
        return self._hidden_activation(self.hidden_input(v))

    def _hidden_activation(self, a):
        return ops.sigmoid(a) if self.hidden == "bernoulli" else a

    def visible_mean(self, h):
        """E[v | h]: visible probabilities, or Gaussian means."""
        a = ops.matmul(h, ops.transpose(self.kernel)) + self.visible_bias
        return ops.sigmoid(a) if self.visible == "bernoulli" else a

    def _sample(self, mean, kind: str):
        if kind == "bernoulli":
            # 1 with probability `mean`: u + mean >= 1 exactly when u >= 1 - mean. Two float ops,
            # measured 10x cheaper than a comparison and a cast of its booleans
            u = keras.random.uniform(ops.shape(mean), seed=self.seed_generator, dtype=mean.dtype)
            return ops.floor(mean + u)
        return mean + keras.random.normal(ops.shape(mean), seed=self.seed_generator, dtype=mean.dtype)

    def sample_hidden(self, v):
        return self._sample(self.hidden_mean(v), self.hidden)

    def sample_visible(self, h):
        return self._sample(self.visible_mean(h), self.visible)

    def gibbs(self, v, steps: int = 1):
        """`steps` full Gibbs steps v -> h -> v from visible states `v`; returns visible samples."""
        for _ in range(int(steps)):
            v = self.sample_visible(self.sample_hidden(v))
        return v

    def reconstruct(self, v):
        """Mean-field reconstruction E[v | E[h | v]] (deterministic, for pictures and comparisons)."""
        return self.visible_mean(self.hidden_mean(v))

    def _sampled_reconstruction(self, a):
        """E[v | h] for one sample h ~ p(h | v), given the pre-activations a = vW + c of v:
        the reconstruction whose error the training history reports."""
        return self.visible_mean(self._sample(self._hidden_activation(a), self.hidden))

    def free_energy(self, v):
        """F(v) = -log sum_h exp(-E(v, h)) (up to a constant), one value per row."""
        return self._free_energy(v, self.hidden_input(v))

    def _free_energy(self, v, a):
        """F(v) given the hidden pre-activations a = vW + c."""
        return self._visible_term(v) + self._hidden_term(a)

    def _visible_term(self, v):
        if self.visible == "bernoulli":
            return -ops.sum(v * self.visible_bias, axis=-1)
        return 0.5 * ops.sum(ops.square(v - self.visible_bias), axis=-1)

    def _hidden_term(self, a):
        if self.hidden == "bernoulli":
            return -ops.sum(ops.softplus(a), axis=-1)
        return -0.5 * ops.sum(ops.square(a), axis=-1)

    def pseudo_log_likelihood(self, v, a=None, hidden_term=None):
        """Stochastic pseudo-log-likelihood (as scikit-learn's BernoulliRBM.score_samples):
        n_visible * log sigmoid(F(v with one random unit flipped) - F(v)). Bernoulli visible only.
        `a` (the pre-activations of v) and `hidden_term` (its hidden part of F), when already
        computed, save the work: flipping unit i by s = 1 - 2 v_i changes the pre-activations
        by s W_i and the visible part of F by -s b_i."""
        a = self.hidden_input(v) if a is None else a
        hidden_term = self._hidden_term(a) if hidden_term is None else hidden_term
        n = ops.shape(v)[-1]
        index = keras.random.randint((ops.shape(v)[0],), 0, n, seed=self.seed_generator)
        sign = 1.0 - 2.0 * ops.take_along_axis(v, ops.expand_dims(index, -1), axis=-1)  # (batch, 1)
        flipped_a = a + sign * ops.take(self.kernel, index, axis=0)
        gap = self._hidden_term(flipped_a) - hidden_term - sign[:, 0] * ops.take(self.visible_bias, index)
        return ops.cast(n, v.dtype) * ops.log_sigmoid(gap)

    def call(self, inputs):
        return self.hidden_mean(inputs)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    # --- learning ---------------------------------------------------------------------

    def contrastive_divergence(self, v0):
        """Gradients of the negative log-likelihood estimated by CD-k or PCD-k, in the
        order of `trainable_weights` (kernel, hidden bias, visible bias), with L2 weight
        decay on the kernel; and, for monitoring, the data's hidden pre-activations and
        its reconstruction: the visible means given the data's sampled hidden states,
        which CD-k computes anyway (the figure of Hinton & Salakhutdinov's rbm.m).

        Products that share an operand run as one: under PCD the chains' first visible
        means and the data's reconstruction (one [h; h_data] W^T), and the two statistics
        of the kernel gradient (one [v; v0]^T [hk; -h0]). Same arithmetic in fewer,
        larger matrix products, which a CPU runs faster (measured)."""
        a0 = self.hidden_input(v0)
        h0 = self._hidden_activation(a0)
        h_data = self._sample(h0, self.hidden)
        if self.persistent:  # the negative phase starts from the chains, not the data
            h = self.sample_hidden(self.chains)
            means = self.visible_mean(ops.concatenate([h, h_data], axis=0))
            n = ops.shape(h)[0]
            means, reconstruction = means[:n], means[n:]
        else:
            h = h_data
            means = reconstruction = self.visible_mean(h)
        for step in range(self.cd_k):
            if step:
                means = self.visible_mean(h)
            # PCD chains must stay proper samples; CD uses the visible means (Hinton 2010, 3.2)
            v = self._sample(means, self.visible) if self.persistent or self.sample_visible_states else means
            hk = self.hidden_mean(v)
            if step < self.cd_k - 1:
                h = self._sample(hk, self.hidden)
        if self.persistent:
            self.chains.assign(v)
        nk = ops.cast(ops.shape(v)[0], v0.dtype)
        n0 = ops.cast(ops.shape(v0)[0], v0.dtype)
        grad_kernel = ops.matmul(ops.transpose(ops.concatenate([v, v0], axis=0)),
                                 ops.concatenate([hk * (1.0 / nk), h0 * (-1.0 / n0)], axis=0))
        if self.weight_decay:
            grad_kernel = grad_kernel + self.weight_decay * self.kernel
        grad_hidden = ops.mean(hk, axis=0) - ops.mean(h0, axis=0)
        grad_visible = ops.mean(v, axis=0) - ops.mean(v0, axis=0)
        return [grad_kernel, grad_hidden, grad_visible], a0, reconstruction

    def get_config(self):
        return {**super().get_config(), "units": self.units, "visible": self.visible, "hidden": self.hidden,
                "cd_k": self.cd_k, "persistent": self.persistent, "n_chains": self.n_chains,
                "weight_decay": self.weight_decay, "sample_visible": self.sample_visible_states,
                "init_stddev": self.init_stddev, "seed": self.seed}


class ExampleMeans(keras.metrics.Metric):
    """Means over the examples seen of several per-example figures, kept in one
    vector (one update per step instead of one per figure: a CD step is cheap enough
    that per-metric work shows). `result()` is a dict by figure name; `aliases` report
    a figure under a second name too (the model's `loss`)."""

    def __init__(self, names: Sequence[str], aliases: dict[str, str] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.names, self.aliases = list(names), dict(aliases or {})
        self.total = self.add_variable(shape=(len(self.names),), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, values):
        """values: (examples, figures)."""
        self.total.assign_add(ops.sum(values, axis=0))
        self.count.assign_add(ops.cast(ops.shape(values)[0], self.count.dtype))

    def result(self):
        means = ops.divide_no_nan(self.total, self.count)
        out = {name: means[i] for i, name in enumerate(self.names)}
        return {**{alias: out[name] for alias, name in self.aliases.items()}, **out}

    def reset_state(self):
        self.total.assign(ops.zeros_like(self.total))
        self.count.assign(0.0)


@keras.saving.register_keras_serializable(package="zoo")
class RBMModel(keras.Model):
    """A functional model inputs -> (flatten) -> RBM, trained by CD through `fit`.

    Predicting gives the hidden means (the feature transform). Inputs of any numeric
    dtype are cast in the graph, so binary data can be fed as uint8 (a quarter of the
    bytes to copy into a tensor and gather per batch). The history holds
    `loss` (= `reconstruction_error`: mean squared error between the data and its
    reconstruction E[v | h] from sampled hidden states h ~ p(h | v), the figure
    Hinton's guide (2010, section 5) and reference code monitor; training reads it off
    the CD step for free, for every example), `free_energy` and, for binary visible
    units, `pseudo_log_likelihood`; validation reports the same figures.

    In training the last two are estimated on the first `1 / MONITOR_SHARE` of each
    batch's rows (shuffled by `fit`), which keeps their epoch means unbiased at an
    eighth of the cost: on every row they took about 15% of a CD-1 step on MNIST
    (measured). Validation computes them on every row.
    """

    MONITOR_SHARE = 8

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reconstruction = ExampleMeans(["reconstruction_error"], aliases={"loss": "reconstruction_error"},
                                           name="rbm_reconstruction")
        self.energy = ExampleMeans(["free_energy"] + (["pseudo_log_likelihood"] if self.rbm.visible == "bernoulli"
                                                      else []), name="rbm_energy")

    @property
    def rbm(self) -> RBM:
        return [layer for layer in self.layers if isinstance(layer, RBM)][-1]

    @property
    def metrics(self):
        return [self.reconstruction, self.energy]

    def _visible(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        x = ops.cast(x, self.rbm.compute_dtype)
        return ops.reshape(x, (ops.shape(x)[0], -1))

    def _monitor(self, v0, a0=None, reconstruction=None, share: int = 1):
        """Update the figures of the data v0; its hidden pre-activations a0 and its
        reconstruction, when already computed (by the CD step), save the products. The
        energy figures use the first 1/`share` of the rows (at least one)."""
        rbm = self.rbm
        a0 = rbm.hidden_input(v0) if a0 is None else a0
        if reconstruction is None:
            reconstruction = rbm._sampled_reconstruction(a0)
        self.reconstruction.update_state(ops.mean(ops.square(v0 - reconstruction), axis=-1, keepdims=True))
        if share > 1:
            rows = (ops.shape(v0)[0] + share - 1) // share
            v0, a0 = v0[:rows], a0[:rows]
        hidden_term = rbm._hidden_term(a0)
        figures = [rbm._visible_term(v0) + hidden_term]
        if rbm.visible == "bernoulli":
            figures.append(rbm.pseudo_log_likelihood(v0, a0, hidden_term))
        self.energy.update_state(ops.stack(figures, axis=-1))
        return {**self.reconstruction.result(), **self.energy.result()}

    def train_step(self, data):
        v0 = self._visible(data)
        rbm = self.rbm
        grads, a0, reconstruction = rbm.contrastive_divergence(v0)
        # the figures of the parameters before this update (the energies read the biases and kernel too)
        logs = self._monitor(v0, a0, reconstruction, share=self.MONITOR_SHARE)
        self.optimizer.apply_gradients(zip(grads, [rbm.kernel, rbm.hidden_bias, rbm.visible_bias]))
        return logs

    def test_step(self, data):
        return self._monitor(self._visible(data))


def rbm_model(input_shape: Sequence[int], units: int, name: str = "rbm", **rbm_args: Any) -> RBMModel:
    """An RBMModel on examples of `input_shape` (flattened when of rank > 1)."""
    inputs = keras.Input(shape=tuple(input_shape), name="visible")
    x = keras.layers.Flatten(name="flatten")(inputs) if len(input_shape) > 1 else inputs
    outputs = RBM(units, name="rbm", **rbm_args)(x)
    return RBMModel(inputs, outputs, name=name)


def init_visible_bias(rbm: RBM, x: np.ndarray) -> None:
    """Start the visible biases at the data's statistics (Hinton 2010, 8.1):
    log(p / (1 - p)) for binary units, the mean for Gaussian units."""
    x = np.asarray(x, "float32").reshape(len(x), -1)
    if rbm.visible == "bernoulli":
        p = np.clip(x.mean(axis=0), 1e-3, 1 - 1e-3)
        rbm.visible_bias.assign(np.log(p / (1 - p)).astype("float32"))
    else:
        rbm.visible_bias.assign(x.mean(axis=0).astype("float32"))


def default_visible(x: np.ndarray) -> str:
    """Bernoulli units for data in [0, 1], Gaussian units otherwise."""
    return "bernoulli" if float(np.min(x)) >= 0.0 and float(np.max(x)) <= 1.0 else "gaussian"


def train_rbm(x: np.ndarray, units: int, *, epochs: int = 10, batch_size: int = 64, learning_rate: float = 0.1,
              momentum: float = 0.5, final_momentum: float = 0.9, momentum_epochs: int = 5,
              visible: str = "auto", hidden: str = "bernoulli", cd_k: int = 1,
              persistent: bool = False, weight_decay: float = 2e-4, sample_visible: bool = False,
              seed: int | None = 0, validation_data: np.ndarray | None = None, verbose: Any = 0,
              callbacks: Sequence[Any] = (), steps_per_execution: int = STEPS_PER_EXECUTION,
              name: str = "rbm") -> tuple[RBMModel, dict]:
    """Train one RBM on the rows of `x` with SGD + momentum through `fit`; returns
    the model and its history. The momentum is `momentum` for the first
    `momentum_epochs` epochs, then `final_momentum` (Hinton's rbm.m: 0.5, then 0.9
    after 5 epochs; momentum_epochs=0 keeps `momentum` throughout)."""
    x = np.asarray(x, "float32").reshape(len(x), -1)
    visible = default_visible(x) if visible == "auto" else visible
    model = rbm_model((x.shape[1],), units, name=name, visible=visible, hidden=hidden, cd_k=cd_k,
                      persistent=persistent, n_chains=batch_size, weight_decay=weight_decay,
                      sample_visible=sample_visible, seed=seed)
    init_visible_bias(model.rbm, x)
    from zoo.optimizers import ScheduledSGD

    steps = -(-len(x) // batch_size)
    switch = int(momentum_epochs) * steps if momentum_epochs else 0
    model.compile(optimizer=ScheduledSGD(learning_rate, momentum=momentum, final_momentum=final_momentum
                                         if switch else momentum, switch_step=switch),
                  steps_per_execution=steps_per_execution)
    val = None
    if validation_data is not None:
        from zoo.data import batches

        val = batches(np.asarray(validation_data, "float32").reshape(len(validation_data), -1), batch_size)
    # the arrays themselves: Keras's adapter shuffles and gathers whole batches (measured faster than
    # a per-example tf.data pipeline); the shuffle order follows the seed set by keras.utils.set_random_seed
    history = model.fit(x, batch_size=batch_size, validation_data=val, epochs=epochs, verbose=verbose, shuffle=True,
                        callbacks=list(callbacks))
    return model, {k: [float(v) for v in vs] for k, vs in history.history.items()}


def transform(rbm: RBM, x: np.ndarray, *, sample: bool = False, batch_size: int = 1024) -> np.ndarray:
    """Hidden means (or one sample of the hidden states) of `rbm` for the rows of `x`."""
    x = np.asarray(x, "float32").reshape(len(x), -1)
    out = []
    for i in range(0, len(x), batch_size):
        v = ops.convert_to_tensor(x[i:i + batch_size])
        out.append(ops.convert_to_numpy(rbm.sample_hidden(v) if sample else rbm.hidden_mean(v)))
    return np.concatenate(out) if out else np.zeros((0, rbm.units), "float32")


def train_stack(x: np.ndarray, sizes: Sequence[int], *, propagate: str = "probabilities",
                visible: str = "auto", top_hidden: str = "bernoulli", gaussian_lr_scale: float = 0.01,
                learning_rate: float = 0.1, seed: int | None = 0,
                on_layer: Callable[[int, RBMModel, np.ndarray, dict], None] | None = None,
                **train_args: Any) -> list[tuple[RBMModel, dict]]:
    """Greedy layer-wise pretraining (Hinton, Osindero & Teh 2006): RBM 1 on `x`, then
    each next RBM on the previous one's hidden probabilities (or samples, with
    `propagate="samples"`). `top_hidden="gaussian"` gives the last RBM linear
    hidden units. Layers with Gaussian units learn at `learning_rate * gaussian_lr_scale`
    (Hinton & Salakhutdinov 2006 used 0.1 and 0.001). `on_layer(i, model, inputs,
    history)` is called after each layer is trained, with the inputs it was trained on."""
    if propagate not in ("probabilities", "samples"):
        raise ZooError(f"propagate must be 'probabilities' or 'samples', got {propagate!r}")
    if not sizes:
        raise ZooError("an RBM stack needs at least one layer size")
    x = np.asarray(x, "float32").reshape(len(x), -1)
    stack = []
    inputs = x
    for i, units in enumerate(sizes, start=1):
        hidden = top_hidden if i == len(sizes) else "bernoulli"
        kind = (default_visible(inputs) if visible == "auto" else visible) if i == 1 else "bernoulli"
        lr = learning_rate * (gaussian_lr_scale if "gaussian" in (kind, hidden) else 1.0)
        model, history = train_rbm(inputs, int(units), visible=kind, hidden=hidden, learning_rate=lr,
                                   seed=None if seed is None else seed + i, name=f"rbm{i}", **train_args)
        if on_layer is not None:
            on_layer(i, model, inputs, history)
        stack.append((model, history))
        if i < len(sizes):
            inputs = transform(model.rbm, inputs, sample=propagate == "samples")
    return stack

