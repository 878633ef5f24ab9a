"""Optimizers the papers used that Keras lacks, as proper Keras optimizers (they save,
load and run inside `fit` like Keras's own).

- `SDLM`: LeCun et al. 1998's stochastic diagonal Levenberg-Marquardt (Appendix C):
  each weight's step on one example's gradient is eta / (mu + h_kk), with h_kk an
  estimate of the diagonal of the loss's second derivative. The paper back-propagates
  second derivatives (a Gauss-Newton approximation) on 500 examples before each pass
  and updates after every example. Here h_kk is a running average of one example's
  squared gradient (estimated from the batch's: batch_size * g^2), the diagonal of the
  empirical Fisher matrix (not the Gauss-Newton diagonal: it vanishes as the model
  fits its training data, Martens 2014); and a batch of B examples moves the
  weights as B steps on its mean gradient would (eta * B), so `learning_rate` is the
  paper's per-example eta. With curvature="gauss-newton", h is the paper's
  Gauss-Newton diagonal, set from outside, and each update takes one example's
  gradient (zoo.sdlm, LeNet-5's paper recipe).
- `ScheduledSGD`: SGD whose momentum follows a schedule over the training steps
  (Hinton 2010, rbm.m: 0.5 for the first 5 epochs, then 0.9); Keras's SGD takes a
  schedule for the learning rate only.
"""

from __future__ import annotations

import keras
from keras import ops

#: how SDLM estimates each weight's curvature h
CURVATURES = ("fisher", "gauss-newton")


@keras.saving.register_keras_serializable(package="zoo")
class SDLM(keras.optimizers.Optimizer):
    """Stochastic diagonal Levenberg-Marquardt: w -= eta * g / (mu + h).

    curvature="fisher": h is the bias-corrected running mean (decay `rho`) of B * g^2, g
    the mean gradient of a batch of B, and the step is eta * B * g / (mu + h).
    curvature="gauss-newton": h is set from outside (CurvatureEstimate: the Gauss-Newton
    diagonal on 500 examples) and each gradient is one example's (PerExampleTrainer), as
    in the paper."""

    def __init__(self, learning_rate=5e-4, mu: float = 0.02, rho: float = 0.99, batch_size: int = 1,
                 curvature: str = "fisher", name: str = "sdlm", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if curvature not in CURVATURES:
            raise ValueError(f"SDLM curvature must be one of {', '.join(CURVATURES)}, got {curvature!r}")
        self.mu, self.rho, self.batch_size, self.curvature = float(mu), float(rho), int(batch_size), curvature

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.curvatures = [self.add_variable_from_reference(v, "curvature") for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        h = self.curvatures[self._get_variable_index(variable)]
        g = ops.cast(gradient, variable.dtype)
        if self.curvature == "gauss-newton":
            lr = ops.cast(learning_rate, variable.dtype)
            self.assign_sub(variable, ops.divide(ops.multiply(g, lr), ops.add(h, self.mu)))
            return
        lr = ops.cast(learning_rate, variable.dtype) * self.batch_size
        self.assign(h, ops.add(ops.multiply(h, self.rho), ops.multiply(ops.square(g), (1.0 - self.rho) * self.batch_size)))
        seen = 1.0 - ops.power(ops.cast(self.rho, variable.dtype), ops.cast(self.iterations + 1, variable.dtype))
        self.assign_sub(variable, ops.divide(ops.multiply(g, lr), ops.add(ops.divide(h, seen), self.mu)))

    def steps(self, variables) -> list:
        """eta / (mu + h) for each of `variables` at the current iteration (gauss-newton:
        PerExampleTrainer applies them to each example's gradient in its own loop, ~2x
        faster than a Keras apply per example)."""
        self.build(variables)
        lr = self._get_current_learning_rate()
        return [ops.divide(ops.cast(lr, v.dtype), ops.add(self.curvatures[self._get_variable_index(v)], self.mu))
                for v in variables]

    def set_curvatures(self, variables, values) -> None:
        """Set h for `variables` (the Gauss-Newton diagonal estimated outside)."""
        self.build(variables)
        for v, value in zip(variables, values):
            self.curvatures[self._get_variable_index(v)].assign(value)

    def get_config(self):
        return {**super().get_config(), "mu": self.mu, "rho": self.rho, "batch_size": self.batch_size,
                "curvature": self.curvature}


@keras.saving.register_keras_serializable(package="zoo")
class ScheduledSGD(keras.optimizers.SGD):
    """keras.optimizers.SGD whose momentum is `momentum` until step `switch_step`, then
    `final_momentum`."""

    def __init__(self, learning_rate=0.01, momentum: float = 0.5, final_momentum: float = 0.9, switch_step: int = 0,
                 name: str = "scheduled_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum, name=name, **kwargs)
        self.final_momentum, self.switch_step = float(final_momentum), int(switch_step)

    def build(self, variables):
        if self.built:
            return
        keras.optimizers.Optimizer.build(self, variables)  # the momenta even when the first momentum is 0
        self.momentums = self.add_optimizer_variables(variables, "momentum")

    def update_step(self, gradient, variable, learning_rate):
        m = self.momentums[self._get_variable_index(variable)]
        momentum = ops.where(ops.less(self.iterations, self.switch_step), self.momentum, self.final_momentum)
        momentum = ops.cast(momentum, variable.dtype)
        lr = ops.cast(learning_rate, variable.dtype)
        self.assign(m, ops.subtract(ops.multiply(m, momentum), ops.multiply(ops.cast(gradient, variable.dtype), lr)))
        self.assign_add(variable, m)

    def get_config(self):
        return {**super().get_config(), "final_momentum": self.final_momentum, "switch_step": self.switch_step}
