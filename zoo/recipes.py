"""Training recipes: named, inspectable sets of hyperparameters a spec carries beside
its defaults (zoo.spec.Recipe), e.g. the paper's own way of training the model.

    zoo train lenet5 -d mnist --recipe paper
    zoo info lenet5                  the defaults and every recipe, with its notes

A recipe is applied as a spec whose defaults are the recipe's, so everything that
reads defaults (learning rate `auto`, "what changed" in `zoo runs`, transfer) sees
the recipe as the starting point; the caller's hyperparameters still override it.
Listing recipes imports no TensorFlow.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from zoo import registry
from zoo.errors import ZooError, did_you_mean
from zoo.spec import RECIPE_OPTIONS, ModelSpec, Recipe

#: the recipe every spec has: its own defaults
DEFAULT = "default"


def get(spec: ModelSpec, name: str | None) -> Recipe | None:
    """Recipe `name` of `spec`; None for the defaults ("default" or None)."""
    if name in (None, "", DEFAULT):
        return None
    if name in spec.recipes:
        return spec.recipes[name]
    known = ", ".join([DEFAULT, *spec.recipes])
    raise ZooError(f"model {spec.name!r} has no recipe {name!r}." + did_you_mean(name, spec.recipes)
                   + f" Its recipes: {known} (`zoo info {spec.name}` shows them).")


def apply(spec: ModelSpec, name: str | None) -> tuple[ModelSpec, Recipe | None]:
    """`spec` with recipe `name`'s hyperparameters as its defaults, and the recipe."""
    recipe = get(spec, name)
    if recipe is None:
        return spec, None
    return replace(spec, defaults={**spec.defaults, **recipe.hyperparameters}), recipe


def budget(recipe: Recipe, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(hyperparameters, train() options) of a recipe's budget ("quick", "paper")."""
    if name not in recipe.budgets:
        raise ZooError(f"recipe {recipe.name!r} has no budget {name!r}; it has {', '.join(recipe.budgets) or 'none'}")
    values = dict(recipe.budgets[name])
    options = {k: values.pop(k) for k in RECIPE_OPTIONS if k in values}
    return values, options


def listing(pattern: str | None = None) -> list[tuple[ModelSpec, Recipe]]:
    """Every (spec, recipe) of the working models matching a glob (imports specs, not TensorFlow)."""
    specs, _ = registry.load_all(pattern)
    return [(spec, recipe) for spec in specs for recipe in spec.recipes.values()]


def changes(spec: ModelSpec, recipe: Recipe) -> dict[str, tuple[Any, Any]]:
    """The hyperparameters a recipe changes: name -> (default, recipe's)."""
    defaults = spec.hyperparameters()
    return {k: (defaults.get(k), v) for k, v in recipe.hyperparameters.items() if defaults.get(k) != v}


def holdout(dataset, examples: int):
    """`dataset` with its validation split cut to `examples` and the rest moved into
    training (a recipe whose paper trained on all the training data)."""
    import dataclasses

    import numpy as np

    (xt, yt), (xv, yv) = dataset.arrays["train"], dataset.arrays["val"]
    if examples <= 0 or examples >= len(xv):
        return dataset
    arrays = {**dataset.arrays, "train": (np.concatenate([xt, xv[examples:]]), np.concatenate([yt, yv[examples:]])),
              "val": (xv[:examples], yv[:examples])}
    sizes = {**dict(dataset.spec.sizes), "train": len(arrays["train"][0]), "val": examples}
    return dataclasses.replace(dataset, arrays=arrays, spec=dataclasses.replace(dataset.spec, sizes=sizes))


def describe(spec: ModelSpec) -> list[str]:
    """`zoo info` lines: each recipe, what it changes from the defaults, its paper figure and notes."""
    if not spec.recipes:
        return ["recipes:           default (the defaults above)"]
    lines = [f"recipes:           {DEFAULT} (the defaults above), {', '.join(spec.recipes)} (zoo train --recipe NAME)"]
    for recipe in spec.recipes.values():
        lines.append(f"  {recipe.name:16} {recipe.summary}")
        for key, (before, after) in changes(spec, recipe).items():
            lines.append(f"    {key:20} {before} -> {after}")
        if recipe.augment:
            lines.append(f"    {'augment':20} {', '.join(recipe.augment)}")
        if recipe.adversarial:
            lines.append(f"    {'adversarial':20} " + ", ".join(f"{k}={v}" for k, v in recipe.adversarial.items()))
        if recipe.figure:
            lines.append(f"    {'paper figure':20} {recipe.figure.metric} {recipe.figure.value:g} on {recipe.dataset} "
                         f"({recipe.figure.source}); zoo reproduce {spec.name}"
                         + (f" --recipe {recipe.name}" if recipe.name != "paper" else ""))
        if recipe.notes:
            lines.append(f"    {'notes':20} {recipe.notes}")
    return lines
