"""Long short-term memory networks (Hochreiter & Schmidhuber 1997, with the forget gate
of Gers et al. 2000, as Keras's LSTM layer implements it).

One builder covers
- sequence classification, many-to-one (a label per sequence): rows of an image read
  one by one (sequential MNIST/digits: a (28, 28, 1) image is 28 steps of 28 values),
  or text (TextVectorization with the training split's vocabulary, then an Embedding
  whose padding is masked);
- sequence regression and forecasting, many-to-one (the next `horizon` values of a
  window) and many-to-many (a value per step, `series:...&targets=sequence`).
Stacked depth, units per layer, bidirectional layers (Schuster & Paliwal 1997),
input dropout and recurrent dropout (Gal & Ghahramani 2016), and masking of padded
steps for variable-length input (`masking=true`: steps whose every feature equals
`mask_value` are skipped).
"""

from __future__ import annotations

from zoo.errors import ZooError
from zoo.plugins.shipped import shipped
from zoo.spec import Boolean, DataSpec, Figure, Float, Int, ModelSpec, PerLayer, Recipe

DEFAULTS = {
    "depth": 1,
    "units": 64,
    "widths": [],  # units of each stacked layer; overrides depth and units when set
    "bidirectional": False,
    "dropout": 0.0,  # on each layer's inputs
    "recurrent_dropout": 0.0,  # on the recurrent state (variational, same mask at every step)
    "masking": False,  # skip padded steps (numeric sequences); text is always masked
    "mask_value": 0.0,
    "output": "auto",  # last (many-to-one), sequence (many-to-many), auto: as the data's windowing says
    "embedding_dim": 64,  # text only
    "max_length": 200,  # text only: tokens kept per example
    "epochs": 30,
    "patience": 5,
}

SEARCH_SPACE = {
    "depth": Int(1, 3),
    "widths": PerLayer(Int(16, 256, step=16)),  # units of each stacked layer
    "bidirectional": Boolean(),
    "dropout": Float(0.0, 0.5, step=0.1),
    "recurrent_dropout": Float(0.0, 0.5, step=0.1),
    "learning_rate": Float(1e-4, 1e-2, sampling="log"),
}


def layer_widths(hp) -> list[int]:
    """Units of each stacked LSTM layer: `widths` when given, else depth x units."""
    widths = [int(w) for w in hp["widths"]] if hp["widths"] else [int(hp["units"])] * int(hp["depth"])
    if not widths or any(w < 1 for w in widths):
        raise ZooError(f"an LSTM needs at least one layer of positive width, got widths={widths}, depth={hp['depth']}")
    return widths


def sequence_output(hp, data_spec: DataSpec) -> bool:
    """Whether the model predicts one value per step (many-to-many)."""
    mode = hp["output"]
    if mode not in ("auto", "last", "sequence"):
        raise ZooError(f"output must be auto, last or sequence, got {mode!r}")
    if mode == "auto":
        return (data_spec.preprocessing.get("windowing") or {}).get("targets") == "sequence"
    return mode == "sequence"


def _inputs(hp, data_spec: DataSpec):
    """The input layer and the (batch, steps, features) tensor the LSTMs read."""
    import keras

    shape = tuple(data_spec.input_shape)
    if data_spec.input_kind == "text":
        vocabulary = data_spec.preprocessing.get("vocabulary")
        if not vocabulary:
            raise ZooError(f"dataset {data_spec.name!r} is text without a vocabulary; load it through zoo.data")
        inputs = keras.Input(shape=shape, dtype="string", name="text")
        x = keras.layers.TextVectorization(vocabulary=list(vocabulary), output_sequence_length=int(hp["max_length"]),
                                           name="vectorize")(inputs)
        x = keras.layers.Embedding(len(vocabulary) + 2, int(hp["embedding_dim"]), mask_zero=True, name="embedding")(x)
        return inputs, x
    if len(shape) not in (1, 2, 3):
        raise ZooError(f"an LSTM reads (steps, features) sequences or (rows, cols, channels) images; dataset "
                       f"{data_spec.name!r} has examples of shape {shape}")
    inputs = keras.Input(shape=shape, name="sequence")
    x = inputs
    if len(shape) == 3:  # an image read row by row: rows are the steps
        x = keras.layers.Reshape((shape[0], shape[1] * shape[2]), name="rows")(x)
    elif len(shape) == 1:  # a vector read one value per step
        x = keras.layers.Reshape((shape[0], 1), name="steps")(x)
    if hp["masking"]:
        x = keras.layers.Masking(mask_value=float(hp["mask_value"]), name="masking")(x)
    return inputs, x


def build(hp, data_spec: DataSpec):
    """[Bidirectional] LSTM x depth -> output head (last step, or every step)."""
    import keras

    from zoo.layers import output_head

    per_step = sequence_output(hp, data_spec)
    if per_step and data_spec.task != "regression":
        raise ZooError("many-to-many output (output=sequence) is for regression/forecasting targets")
    inputs, x = _inputs(hp, data_spec)
    widths = layer_widths(hp)
    for i, units in enumerate(widths, start=1):
        lstm = keras.layers.LSTM(units, return_sequences=per_step or i < len(widths), dropout=float(hp["dropout"]),
                                 recurrent_dropout=float(hp["recurrent_dropout"]), name=f"lstm{i}")
        x = keras.layers.Bidirectional(lstm, name=f"bilstm{i}")(x) if hp["bidirectional"] else lstm(x)
    if not per_step:
        return keras.Model(inputs, output_head(x, data_spec), name="lstm")
    steps = int(x.shape[1])
    if data_spec.num_targets != steps:
        raise ZooError(f"many-to-many output gives {steps} values per example but dataset {data_spec.name!r} "
                       f"has {data_spec.num_targets} targets; use targets=sequence windows")
    z = keras.layers.Dense(1, dtype="float32", name="output_step")(x)
    z = keras.layers.Reshape((steps,), name="output_standardized")(z)
    stats = data_spec.preprocessing.get("target")
    if stats:  # speak the targets' own units, as zoo.layers.output_head does
        z = keras.layers.Normalization(mean=stats["mean"], variance=[float(s) ** 2 for s in stats["std"]],
                                       invert=True, dtype="float32", name="output")(z)
    return keras.Model(inputs, z, name="lstm")


def compile_args(hp, data_spec: DataSpec) -> dict:
    """Regression reports mse beside mae and rmse (forecast error vs the naive baseline)."""
    import keras

    if data_spec.task != "regression":
        return {}
    return {"metrics": [keras.metrics.MeanSquaredError(name="mse"), keras.metrics.MeanAbsoluteError(name="mae"),
                        keras.metrics.RootMeanSquaredError(name="rmse")]}


#: the variants: name -> (summary, default dataset, defaults over DEFAULTS, reference)
VARIANTS = {
    "lstm": ("LSTM for sequence classification and forecasting (many-to-one, many-to-many)", "sines", {},
             "Hochreiter & Schmidhuber 1997; Gers, Schmidhuber & Cummins 2000"),
    "stacked_lstm": ("Two stacked LSTM layers with recurrent dropout", "sines",
                     {"depth": 2, "recurrent_dropout": 0.1}, "Graves, Mohamed & Hinton 2013; Gal & Ghahramani 2016"),
    "bilstm": ("Bidirectional LSTM, e.g. digits read row by row", "digits", {"bidirectional": True},
               "Schuster & Paliwal 1997; Graves & Schmidhuber 2005"),
}


#: Hochreiter & Schmidhuber 1997's training, on the zoo's forecasting task
LSTM_PAPER = Recipe(
    name="paper",
    summary="Hochreiter & Schmidhuber 1997: plain gradient descent (rate 0.1), small batches, no early stopping",
    hyperparameters={"optimizer": "sgd", "learning_rate": 0.1, "batch_size": 8, "epochs": 50, "patience": 0},
    budgets={"quick": {"epochs": 5}, "paper": {}},
    notes="The paper updates after every step of every sequence (truncated real-time recurrent learning) and its "
          "tasks (embedded Reber grammar, the adding and multiplication problems) are not datasets here, so there "
          "is no figure to reproduce. Keras's LSTM has the forget gate of Gers et al. 2000 (bias 1), which the 1997 "
          "cell lacks.",
    reference="Hochreiter & Schmidhuber 1997")


#: trained here with the defaults (zoo train lstm), shipped in the package
SINES = shipped("sines", "lstm_sines", "62f8a95973e61256ad35ba207d1f5ceb6d28fb5e8cfc4c4643131c0a1131e8c5",
                Figure("test_mse", 0.05084637179970741, "measured here: zoo train lstm (defaults, seed 0, 30 epochs), the "
                       "latest 15% of the windows", dataset="sines"),
                "a 64-unit LSTM forecasting the next value of the built-in noisy sines (windows of 48 steps)")


def _spec(name: str) -> ModelSpec:
    summary, dataset, defaults, reference = VARIANTS[name]
    return ModelSpec(name=name, family="lstm", summary=summary, tasks=("regression", "classification"), build=build,
                     defaults={**DEFAULTS, **defaults}, search_space=SEARCH_SPACE, input_ranks=(0, 1, 2, 3),
                     default_dataset=dataset, reference=reference, compile_args=compile_args,
                     recipes={"paper": LSTM_PAPER} if name == "lstm" else {},
                     presets={"sines": SINES} if name == "lstm" else {})


lstm = _spec("lstm")
stacked_lstm = _spec("stacked_lstm")
bilstm = _spec("bilstm")
