"""Adversarial examples and adversarial training for any classifier in the zoo.

Attacks, under the L-infinity norm, on the model's inputs after preprocessing:
- FGSM (Goodfellow, Shlens & Szegedy 2015): one step of size eps along the sign
  of the loss gradient;
- PGD (Madry et al. 2018): `steps` steps of `step_size` from a random start in the
  eps-ball, each projected back into the ball.
Adversarial examples are clipped to the data's valid range (DataSpec.value_range,
(0, 1) for images). Data without a bounded range (standardised tabular features)
is not clipped: eps is then in standard deviations of each feature.

Adversarial training wraps the built classifier in `AdversarialTrainer`, a
keras.Model whose `train_step` crafts the attack on each batch and minimises
(1 - adv_weight) * clean loss + adv_weight * adversarial loss (Goodfellow et al.'s
alpha = 0.5 by default). Keras's `fit` runs it, so it works for every registered
classification model without its plugin knowing; every classification spec has
the `adversarial` capability (zoo.spec.IMPLIED_CAPABILITIES). The run saves the
plain classifier as model.keras: no attack code in the saved or exported graph.

    zoo train mlp -d digits --adversarial pgd --eps 0.1
    zoo attack runs/mlp-digits-... --eps 0.05,0.1,0.2
    zoo.train("mlp", "digits", adversarial={"attack": "fgsm", "eps": 0.1})

This module imports TensorFlow only inside functions (the CLI imports it).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from zoo.commands import command
from zoo.errors import ZooError

ATTACKS = ("fgsm", "pgd")
#: PGD's default step: Madry et al. 2018's 0.01 (inputs in [0, 1])
PGD_STEP_SIZE = 0.01


@dataclass(frozen=True)
class AttackConfig:
    """One L-infinity attack, and how adversarial training mixes it in.

    `step_size` defaults to eps for FGSM and, for PGD, to PGD_STEP_SIZE: Madry et
    al.'s 0.01 (their MNIST attack: eps 0.3, 40 steps of 0.01, a random start);
    `random_start` defaults to False for FGSM, True for PGD.
    `clip` is the valid input range; None means no clipping.
    """

    attack: str = "fgsm"
    eps: float = 0.1
    steps: int = 10
    step_size: float | None = None
    random_start: bool | None = None
    adv_weight: float = 0.5
    clip: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.attack not in ATTACKS:
            raise ZooError(f"unknown attack {self.attack!r}; use one of {', '.join(ATTACKS)}")
        if not self.eps > 0:
            raise ZooError(f"eps must be positive, got {self.eps}")
        if int(self.steps) < 1:
            raise ZooError(f"attack steps must be >= 1, got {self.steps}")
        if not 0.0 <= self.adv_weight <= 1.0:
            raise ZooError(f"adv_weight (the adversarial share of the loss) must be in [0, 1], got {self.adv_weight}")
        if self.step_size is not None and not self.step_size > 0:
            raise ZooError(f"step_size must be positive, got {self.step_size}")
        if self.clip is not None and not (len(self.clip) == 2 and self.clip[0] < self.clip[1]):
            raise ZooError(f"clip must be (low, high) with low < high, got {self.clip}")

    @property
    def iterations(self) -> int:
        return 1 if self.attack == "fgsm" else int(self.steps)

    @property
    def alpha(self) -> float:
        """The step size actually used."""
        if self.step_size is not None:
            return float(self.step_size)
        return float(self.eps) if self.attack == "fgsm" else PGD_STEP_SIZE

    @property
    def starts_random(self) -> bool:
        return self.attack == "pgd" if self.random_start is None else bool(self.random_start)

    def label(self) -> str:
        """fgsm_eps0.1, pgd40_eps0.3: keys of metrics.json."""
        name = "fgsm" if self.attack == "fgsm" else f"pgd{self.iterations}"
        return f"{name}_eps{self.eps:g}"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(step_size=self.alpha, random_start=self.starts_random, clip=list(self.clip) if self.clip else None)
        return d


def attack_config(value: str | Mapping[str, Any] | AttackConfig, value_range: Sequence[float] | None = None
                  ) -> AttackConfig:
    """An AttackConfig from a name ("fgsm"), a dict or a config; the clip range
    defaults to the data's `value_range` ("none" or False turns clipping off)."""
    if isinstance(value, AttackConfig):
        config = value
    elif isinstance(value, str):
        config = AttackConfig(attack=value.lower())
    elif isinstance(value, Mapping):
        known = set(AttackConfig.__dataclass_fields__)
        unknown = set(value) - known
        if unknown:
            raise ZooError(f"unknown adversarial option(s) {sorted(unknown)}; known: {', '.join(sorted(known))}")
        options = dict(value)
        options.setdefault("clip", "auto")
        clip = options.pop("clip")
        try:
            config = AttackConfig(**{k: v for k, v in options.items() if v is not None})
        except TypeError as exc:
            raise ZooError(f"bad adversarial options {dict(value)}: {exc}") from None
        if clip in (None, False, "none"):
            return replace(config, clip=None)
        if clip != "auto":
            return replace(config, clip=tuple(float(c) for c in clip))
    else:
        raise ZooError(f"adversarial must be 'fgsm', 'pgd' or a dict of options, got {type(value).__name__}")
    if config.clip is None and value_range is not None and not (isinstance(value, Mapping) and
                                                                 value.get("clip") in (False, "none")):
        config = replace(config, clip=(float(value_range[0]), float(value_range[1])))
    return config


def check_data(data_spec: Any, task: str) -> None:
    """Refuse what cannot be attacked by gradient: non-classification, text, integer inputs."""
    if task != "classification":
        raise ZooError(f"adversarial training and attacks are for classifiers; this run learns {task}")
    if data_spec.input_kind == "text":
        raise ZooError("adversarial attacks need continuous inputs; text is not differentiable (attack embeddings "
                       "instead)")


# --- attacks (TensorFlow) --------------------------------------------------------


def logits_function(model):
    """x -> logits of a classifier whose output is probabilities.

    For the zoo's heads (a Dense or Activation layer with softmax/sigmoid last)
    the pre-activation is computed exactly, which keeps attack gradients alive when
    the softmax saturates; otherwise log-probabilities are used (equal to the
    logits up to a constant for softmax, and exact log-odds for sigmoid).
    """
    import keras

    last = model.layers[-1] if getattr(model, "layers", None) else None
    inputs = getattr(model, "inputs", None)
    inputs = inputs[0] if isinstance(inputs, (list, tuple)) and len(inputs) == 1 else inputs
    activation = getattr(getattr(last, "activation", None), "__name__", "")
    try:
        if isinstance(last, keras.layers.Dense) and activation in ("softmax", "sigmoid"):
            hidden = keras.Model(inputs, last.input)

            def dense_logits(x, training=False):
                z = keras.ops.matmul(hidden(x, training=training), keras.ops.cast(last.kernel, "float32"))
                return z + keras.ops.cast(last.bias, "float32") if last.use_bias else z

            return dense_logits
        if isinstance(last, keras.layers.Activation) and activation in ("softmax", "sigmoid"):
            pre = keras.Model(inputs, last.input)
            return lambda x, training=False: keras.ops.cast(pre(x, training=training), "float32")
    except (AttributeError, ValueError, TypeError):  # not a functional graph: fall back
        pass

    def log_probabilities(x, training=False):
        p = keras.ops.clip(keras.ops.cast(model(x, training=training), "float32"), 1e-12, 1.0 - 1e-7)
        if p.shape[-1] == 1:
            return keras.ops.log(p) - keras.ops.log(1.0 - p)
        return keras.ops.log(p)

    return log_probabilities


def _attack_loss(y, logits):
    """Per-example cross-entropy on logits (binary when there is one output unit)."""
    import tensorflow as tf

    if logits.shape[-1] == 1:
        y = tf.cast(tf.reshape(y, (-1, 1)), logits.dtype)
        return tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits)
    y = tf.cast(tf.reshape(y, (-1,)), "int64")
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)


def perturb(logits_fn, x, y, config: AttackConfig, seed=None):
    """Adversarial examples for the batch (x, y): FGSM or PGD as `config` says.

    `seed` is a keras.random.SeedGenerator (or an int) for the random start. The
    result lies within eps of x (L-infinity) and inside config.clip.
    """
    import keras
    import tensorflow as tf

    x = tf.convert_to_tensor(x)
    dtype = x.dtype if x.dtype.is_floating else tf.float32
    x = tf.cast(x, dtype)
    eps, alpha = tf.cast(config.eps, dtype), tf.cast(config.alpha, dtype)
    low, high = x - eps, x + eps
    if config.clip is not None:
        low = tf.maximum(low, tf.cast(config.clip[0], dtype))
        high = tf.minimum(high, tf.cast(config.clip[1], dtype))
    x_adv = x
    if config.starts_random:
        noise = keras.random.uniform(tf.shape(x), -config.eps, config.eps, dtype=dtype, seed=seed)
        x_adv = tf.clip_by_value(x + noise, low, high)

    def step(x_adv):
        with tf.GradientTape() as tape:
            tape.watch(x_adv)
            loss = tf.reduce_sum(_attack_loss(y, logits_fn(x_adv, training=False)))
        grad = tape.gradient(loss, x_adv)
        return tf.stop_gradient(tf.clip_by_value(x_adv + alpha * tf.sign(grad), low, high))

    if config.iterations == 1:
        return step(x_adv)
    _, x_adv = tf.while_loop(lambda i, _: i < config.iterations, lambda i, xa: (i + 1, step(xa)),
                             (tf.constant(0), x_adv))
    return x_adv


def fgsm(model, x, y, eps: float, *, clip: tuple[float, float] | None = (0.0, 1.0)):
    """Goodfellow et al.'s fast gradient sign method on a batch (x, y)."""
    return perturb(logits_function(model), x, y, AttackConfig("fgsm", eps, clip=clip))


def pgd(model, x, y, eps: float, *, steps: int = 40, step_size: float | None = None, random_start: bool = True,
        clip: tuple[float, float] | None = (0.0, 1.0), seed: int = 0):
    """Madry et al.'s projected gradient descent on a batch (x, y)."""
    import keras

    config = AttackConfig("pgd", eps, steps=steps, step_size=step_size, random_start=random_start, clip=clip)
    return perturb(logits_function(model), x, y, config, seed=keras.random.SeedGenerator(seed))


# --- adversarial training ----------------------------------------------------------


def _trainer_class():
    """AdversarialTrainer, defined on first use so this module imports no Keras."""
    global _TRAINER
    if _TRAINER is not None:
        return _TRAINER
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="zoo", name="AdversarialTrainer")
    class AdversarialTrainer(keras.Model):
        """Wraps a classifier; `fit` trains it on clean and adversarial batches.

        Prediction and evaluation are the classifier's own (clean inputs). Save
        `trainer.classifier`, not the trainer, to keep attack code out of the graph.
        """

        def __init__(self, classifier, attack: Mapping[str, Any] | AttackConfig = "fgsm", seed: int = 0, **kwargs):
            super().__init__(**kwargs)
            self.classifier = classifier
            self.attack = attack_config(attack)
            self.seed = int(seed)
            self.seed_generator = keras.random.SeedGenerator(self.seed)
            self._logits = logits_function(classifier)
            self.built = bool(getattr(classifier, "built", False))  # its weights are the classifier's

        def call(self, inputs, training=False):
            return self.classifier(inputs, training=training)

        def adversarial_examples(self, x, y):
            return perturb(self._logits, x, y, self.attack, seed=self.seed_generator)

        def train_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            x_adv = self.adversarial_examples(x, y)
            weight = self.attack.adv_weight
            with tf.GradientTape() as tape:
                y_pred = self(x, training=True)
                y_adv = self(x_adv, training=True)
                clean = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
                adv = self.compute_loss(x=x_adv, y=y, y_pred=y_adv, sample_weight=sample_weight, training=True)
                loss = (1.0 - weight) * clean + weight * adv
                tracker = getattr(self, "_loss_tracker", None)
                if tracker is not None:
                    tracker.update_state(loss, sample_weight=tf.shape(x)[0])
                if self.optimizer is not None:
                    loss = self.optimizer.scale_loss(loss)
            weights = self.trainable_weights
            self.optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
            return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

        def get_config(self):
            return {**super().get_config(), "classifier": keras.saving.serialize_keras_object(self.classifier),
                    "attack": self.attack.to_json(), "seed": self.seed}

        @classmethod
        def from_config(cls, config, custom_objects=None):
            config = dict(config)
            classifier = keras.saving.deserialize_keras_object(config.pop("classifier"), custom_objects=custom_objects)
            attack = dict(config.pop("attack"))
            if attack.get("clip"):
                attack["clip"] = tuple(attack["clip"])
            return cls(classifier, AttackConfig(**attack), **config)

    _TRAINER = AdversarialTrainer
    return _TRAINER


_TRAINER = None


def __getattr__(name: str):
    if name == "AdversarialTrainer":
        return _trainer_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def wrap(classifier, adversarial: str | Mapping[str, Any] | AttackConfig, data_spec: Any, task: str = "classification",
         seed: int = 0):
    """(trainer, config): the classifier wrapped for adversarial training on `data_spec`."""
    check_data(data_spec, task)
    config = attack_config(adversarial, data_spec.value_range)
    return _trainer_class()(classifier, config, seed=seed, name=f"adversarial_{classifier.name}"), config


# --- evaluation --------------------------------------------------------------------


def robustness(model, x, y, *, eps: Sequence[float] = (0.1,), attacks: Sequence[str] = ATTACKS, steps: int = 40,
               step_size: float | None = None, random_start: bool = True, clip: tuple[float, float] | None = None,
               batch_size: int = 256, seed: int = 0) -> tuple[dict[str, float], dict[str, Any]]:
    """Clean accuracy and accuracy under each attack at each eps, on arrays (x, y).

    Returns (metrics, examples): metrics such as {"clean_accuracy": .99,
    "fgsm_eps0.1_accuracy": .9, "pgd40_eps0.1_accuracy": .85}; examples holds the
    first batch's clean and adversarial inputs and predictions at the largest eps
    of the last attack, for plotting.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    if len(x) == 0:
        raise ZooError("no examples to attack")
    logits_fn = logits_function(model)
    configs = [AttackConfig(a, float(e), steps=steps, step_size=step_size, random_start=random_start if a == "pgd"
                            else False, clip=clip) for a in attacks for e in eps]
    generator = keras.random.SeedGenerator(seed)

    def predict(inputs):
        logits = logits_fn(inputs, training=False)
        if logits.shape[-1] == 1:
            return tf.cast(tf.reshape(logits, (-1,)) > 0, "int64")
        return tf.argmax(logits, axis=-1)

    y = np.asarray(y).reshape(-1).astype("int64")
    clean_correct, adv_correct, examples = 0, [0] * len(configs), {}
    step_fns = [tf.function(lambda xb, yb, c=c: perturb(logits_fn, xb, yb, c, seed=generator), reduce_retracing=True)
                for c in configs]
    predict_fn = tf.function(predict, reduce_retracing=True)
    for start in range(0, len(x), batch_size):
        xb = tf.convert_to_tensor(np.asarray(x[start:start + batch_size], "float32"))
        yb = tf.convert_to_tensor(y[start:start + batch_size])
        clean_pred = predict_fn(xb).numpy()
        clean_correct += int(np.sum(clean_pred == yb.numpy()))
        for i, fn in enumerate(step_fns):
            x_adv = fn(xb, yb)
            adv_pred = predict_fn(x_adv).numpy()
            adv_correct[i] += int(np.sum(adv_pred == yb.numpy()))
            if start == 0 and (not examples or configs[i].eps >= examples["eps"]):
                examples = {"x": xb.numpy()[:10], "x_adv": x_adv.numpy()[:10], "y": yb.numpy()[:10],
                            "pred": clean_pred[:10], "pred_adv": adv_pred[:10], "eps": configs[i].eps,
                            "attack": configs[i].label()}
    n = len(x)
    metrics = {"clean_accuracy": clean_correct / n}
    for config, correct in zip(configs, adv_correct):
        metrics[f"{config.label()}_accuracy"] = correct / n
    metrics["attack_examples"] = n
    return metrics, examples


def plot_examples(examples: Mapping[str, Any], path: Path, class_names: Sequence[str] | None = None) -> Path | None:
    """Clean inputs over their adversarial versions, each titled with its prediction."""
    import numpy as np

    from zoo.plots import plt, save_figure

    x, x_adv = np.asarray(examples["x"]), np.asarray(examples["x_adv"])
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3)):
        return None  # not an image: nothing to look at
    names = list(class_names) if class_names else None
    label = (lambda i: names[int(i)] if names and int(i) < len(names) else str(int(i)))
    n = len(x)
    fig, axes = plt.subplots(3, n, figsize=(1.4 * n, 5.0), squeeze=False)
    delta = x_adv - x  # the perturbation, on one symmetric scale: grey is no change
    bound = float(np.abs(delta).max()) or 1.0
    for i in range(n):
        ax = axes[2][i]
        d = delta[i][..., 0] if delta[i].ndim == 3 and delta[i].shape[-1] == 1 else delta[i]
        if d.ndim == 3:
            ax.imshow(np.clip(0.5 + 0.5 * d / bound, 0, 1))
        else:
            ax.imshow(d, cmap="RdBu_r", vmin=-bound, vmax=bound)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[2][0].set_ylabel(f"perturbation\n(+-{bound:.3g})", fontsize=9)
    for row, (images, preds, title) in enumerate(((x, examples["pred"], "clean"),
                                                   (x_adv, examples["pred_adv"], examples["attack"]))):
        for i in range(n):
            ax = axes[row][i]
            img = images[i][..., 0] if images[i].ndim == 3 and images[i].shape[-1] == 1 else images[i]
            ax.imshow(np.clip(img, 0, 1), cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            ok = int(preds[i]) == int(examples["y"][i])
            ax.set_title(label(preds[i]), color="green" if ok else "red", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row][0].set_ylabel(title, fontsize=9)
    fig.suptitle("predictions on clean and adversarial inputs (red = wrong), and the perturbation added", fontsize=9)
    save_figure(fig, path)
    return path


def plot_robustness(metrics: Mapping[str, Any], path: Path, title: str = "") -> Path:
    """Accuracy against eps for each attack (eps 0 is clean accuracy)."""
    from zoo.plots import plt, save_figure

    curves: dict[str, list[tuple[float, float]]] = {}
    for key, value in metrics.items():
        if key.endswith("_accuracy") and "_eps" in key:
            attack, _, eps = key[:-len("_accuracy")].partition("_eps")
            curves.setdefault(attack, []).append((float(eps), float(value)))
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for attack, points in sorted(curves.items()):
        points = [(0.0, float(metrics["clean_accuracy"]))] + sorted(points)
        ax.plot(*zip(*points), marker="o", label=attack)
    ax.set_xlabel("eps (L-infinity)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    save_figure(fig, path)
    return path


def evaluate_run(run: Any, *, eps: Sequence[float], attacks: Sequence[str] = ATTACKS, steps: int = 40,
                 step_size: float | None = None, random_start: bool = True, limit: int | None = None,
                 batch_size: int = 256, data_dir: str | None = None, seed: int | None = None,
                 dataset: Any = None) -> dict[str, float]:
    """Attack a run's model on its test split; merge the figures into metrics.json
    (under "robustness") and write robustness.png and adversarial_examples.png."""
    from zoo.data import load
    from zoo.training import _write_json

    check_data(run.data_spec, run.config.get("task", run.data_spec.task))
    if dataset is None:
        config = run.config
        dataset = load(config["dataset"], split=tuple(config["split"]) if config.get("split") else None,
                       seed=config.get("seed", 0), data_dir=data_dir, limit=config.get("limit"))
    x, y = dataset.arrays["test"]
    if limit:
        x, y = x[:limit], y[:limit]
    clip = tuple(run.data_spec.value_range) if run.data_spec.value_range else None
    metrics, examples = robustness(run.model, x, y, eps=eps, attacks=attacks, steps=steps, step_size=step_size,
                                   random_start=random_start, clip=clip, batch_size=batch_size,
                                   seed=run.config.get("seed", 0) if seed is None else seed)
    metrics["attack_clip"] = list(clip) if clip else None
    saved = dict(run.metrics.get("robustness") or {})
    saved.update(metrics)
    run.metrics["robustness"] = saved
    _write_json(run.dir / "metrics.json", run.metrics)
    plot_robustness(saved, run.dir / "robustness.png", title=f"{run.config['model']} on {run.config['dataset']}")
    if examples:
        plot_examples(examples, run.dir / "adversarial_examples.png", run.data_spec.class_names)
    return metrics


def after_training(run: Any, config: AttackConfig, limit: int = 2000) -> dict[str, float]:
    """Robust accuracy of a freshly adversarially trained run at its training eps:
    FGSM and PGD-`config.steps` (at least 10 steps), on up to `limit` test examples."""
    return evaluate_run(run, eps=[config.eps], steps=max(10, config.iterations if config.attack == "pgd" else 10),
                        limit=limit, dataset=run.dataset)


# --- command line ------------------------------------------------------------------


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """`zoo train` options for adversarial training."""
    g = p.add_argument_group("adversarial training (classifiers)")
    g.add_argument("--adversarial", choices=ATTACKS, help="train on FGSM or PGD adversarial examples too")
    g.add_argument("--eps", type=float, help="L-infinity radius of the attack (default 0.1)")
    g.add_argument("--adv-steps", type=int, help="PGD iterations (default 10)")
    g.add_argument("--adv-step-size", type=float, help="attack step size (default eps for FGSM, 0.01 for PGD: Madry et al.'s)")
    g.add_argument("--adv-weight", type=float, help="adversarial share of the loss (default 0.5)")
    g.add_argument("--adv-random-start", action=argparse.BooleanOptionalAction, default=None,
                   help="start from a random point of the eps-ball (default: PGD yes, FGSM no)")


def train_options(args: argparse.Namespace) -> dict[str, Any]:
    """train() keyword arguments from the `zoo train` adversarial options."""
    if not getattr(args, "adversarial", None):
        if any(getattr(args, k, None) is not None for k in ("eps", "adv_steps", "adv_step_size", "adv_weight")):
            raise ZooError("--eps and --adv-* options need --adversarial fgsm or --adversarial pgd")
        return {}
    options = {"attack": args.adversarial, "eps": args.eps, "steps": args.adv_steps, "step_size": args.adv_step_size,
               "adv_weight": args.adv_weight, "random_start": args.adv_random_start}
    return {"adversarial": {k: v for k, v in options.items() if v is not None}}


def _floats(text: str, what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ZooError(f"{what} takes numbers separated by commas, got {text!r}") from None
    if not values:
        raise ZooError(f"{what} needs at least one value")
    return values


def _attack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a finished run directory of a classifier, or a preset (MODEL.PRESET)")
    p.add_argument("--eps", default="0.1", help="comma-separated L-infinity radii (default 0.1)")
    p.add_argument("--attacks", default="fgsm,pgd", help="fgsm, pgd or both (default fgsm,pgd)")
    p.add_argument("--steps", type=int, default=40, help="PGD iterations (default 40)")
    p.add_argument("--step-size", type=float, help="PGD step size (default 0.01, Madry et al.'s)")
    p.add_argument("--no-random-start", action="store_true", help="PGD starts from the clean input")
    p.add_argument("--limit", type=int, help="attack at most this many test examples")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--data-dir", help="local data directory the run's dataset was read from")
    p.add_argument("--json", action="store_true", help="print JSON")


def cmd_attack(args: argparse.Namespace) -> int:
    """Clean and robust accuracy of a trained classifier under FGSM/PGD; saved in its metrics.json."""
    from zoo.training import Run

    attacks = [a.strip().lower() for a in args.attacks.split(",") if a.strip()]
    for a in attacks:
        if a not in ATTACKS:
            raise ZooError(f"unknown attack {a!r}; use {', '.join(ATTACKS)}")
    from zoo import presets

    if presets.split_name(args.run_dir):  # MODEL.PRESET: the preset's weights on its test data
        run = presets.as_run(args.run_dir, args.data_dir)
    elif not Path(args.run_dir).is_dir():
        raise ZooError(f"run directory {args.run_dir!r} does not exist")
    else:
        run = Run.load(args.run_dir)
    metrics = evaluate_run(run, eps=_floats(args.eps, "--eps"), attacks=attacks, steps=args.steps,
                           step_size=args.step_size, random_start=not args.no_random_start, limit=args.limit,
                           batch_size=args.batch_size, data_dir=args.data_dir)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    print(f"run directory: {run.dir} (metrics.json: robustness; robustness.png)")
    for k, v in metrics.items():
        print(f"  {k:28} {v:.4f}" if isinstance(v, float) else f"  {k:28} {v}")
    return 0


command("attack", _attack_args)(cmd_attack)  # the `zoo.commands` entry point names cmd_attack
