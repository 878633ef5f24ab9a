"""The LSTM family and sequence data: windows, chronological splits, forecasting
against the naive last-value baseline, many-to-many output, masking, images read
row by row, and text (TFDS mock data)."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.data import load
from zoo.data.sequences import last_value_baseline, sines_signal, windows
from zoo.errors import ZooError
from zoo.registry import get_spec
from zoo.spec import DataSpec
from zoo.training import Run, build_model, train

TINY = {"epochs": 1, "units": 8, "batch_size": 64}


# --- data ----------------------------------------------------------------------


def test_windows_many_to_one_and_many_to_many():
    series = np.arange(30, dtype="float32")
    x, y = windows(series, window=5, horizon=2, stride=3)
    assert x.shape == (8, 5, 1) and y.shape == (8, 2)
    assert x[1, :, 0].tolist() == [3, 4, 5, 6, 7]
    assert y[1].tolist() == [8, 9]  # the two values after the window
    xs, ys = windows(series, window=5, horizon=2, targets="sequence")
    assert ys.shape == (24, 5)
    np.testing.assert_array_equal(ys, xs[..., 0] + 2)  # every step's value two steps ahead


def test_windows_refuse_bad_options():
    with pytest.raises(ZooError, match="too short"):
        windows(np.arange(30.0), window=29, horizon=2)
    with pytest.raises(ZooError, match="at least 20"):
        load("series:sines?window=100&length=110")
    with pytest.raises(ZooError, match="targets"):
        windows(np.arange(100.0), window=5, targets="middle")
    with pytest.raises(ZooError, match="unknown series option"):
        load("series:sines?windw=5")


def test_sines_split_is_chronological():
    ds = load("sines")
    assert ds.spec.task == "regression" and ds.spec.input_kind == "sequence"
    assert ds.spec.input_shape == (48, 1)
    _, y = windows(sines_signal(), window=48, horizon=1)
    sizes = ds.spec.sizes
    ys = [ds.arrays[s][1] for s in ("train", "val", "test")]
    np.testing.assert_array_equal(np.concatenate(ys), y)  # in time order: train, then val, then test
    assert sizes["train"] > sizes["val"] > 0 and sizes["test"] > 0
    # one mean/std per feature, shared by every step
    assert len(ds.spec.preprocessing["mean"]) == 1
    assert ds.spec.preprocessing["windowing"]["window"] == 48


def test_series_csv_uri(tmp_path):
    t = np.arange(300)
    path = tmp_path / "weather.csv"
    rows = ["day,temp,rain"] + [f"{d},{np.sin(d / 5):.4f},{d % 7}" for d in t]
    path.write_text("\n".join(rows) + "\n")
    ds = load(f"series:{path}?column=temp&window=10&horizon=3&stride=2")
    assert ds.spec.input_shape == (10, 3)
    assert ds.spec.num_targets == 3
    assert ds.spec.preprocessing["windowing"]["target"] == "temp"
    with pytest.raises(ZooError, match="no column"):
        load(f"series:{path}?column=wind")


def test_last_value_baseline_matches_hand_computation():
    ds = load("series:sines?window=12&horizon=2&length=800")
    x, y = ds.arrays["test"]
    got = last_value_baseline(ds.spec.preprocessing["windowing"], ds.spec.preprocessing, x, y)
    raw_x, raw_y = windows(sines_signal(800), window=12, horizon=2)
    n = len(y)
    expected = np.mean((raw_y[-n:] - raw_x[-n:, -1, :]) ** 2)
    assert got["baseline_test_mse"] == pytest.approx(expected, rel=1e-4)


# --- models --------------------------------------------------------------------


def test_forecasting_reports_last_value_baseline(runs_dir):
    run = train("lstm", "series:sines?window=12&length=500", runs_dir=runs_dir, verbose=0, **TINY)
    m = run.metrics
    assert m["baseline"] == "last_value"
    for key in ("baseline_test_mse", "baseline_test_mae", "mean_baseline_test_mse", "test_mse", "test_mae"):
        assert np.isfinite(m[key]), key
    # the loss is the mse on standardised targets; test_mse is in the series' own units
    std = run.data_spec.preprocessing["target"]["std"][0]
    assert m["test_loss"] == pytest.approx(m["test_mse"] / std ** 2, rel=1e-3)
    assert (run.dir / "model.keras").exists()


def test_many_to_many_output(runs_dir):
    run = train("lstm", "series:sines?window=10&horizon=1&targets=sequence&length=600", runs_dir=runs_dir,
                verbose=0, **TINY)
    assert run.model.output_shape == (None, 10)
    assert run.model.get_layer("lstm1").return_sequences
    x, _ = run.dataset.arrays["test"]
    assert run.model.predict(x[:3], verbose=0).shape == (3, 10)
    assert "baseline_test_mse" in run.metrics


def _sequence_spec(steps: int) -> DataSpec:
    return DataSpec(name="padded", task="classification", input_shape=(steps, 3), num_classes=3,
                    input_kind="sequence")


@pytest.mark.parametrize("bidirectional", [False, True])
def test_masking_skips_padded_steps(bidirectional):
    spec = get_spec("lstm")
    hp = spec.resolve({"masking": True, "units": 6, "bidirectional": bidirectional})
    long_model = build_model(spec, hp, _sequence_spec(8))
    short_model = build_model(spec, hp, _sequence_spec(5))
    short_model.set_weights(long_model.get_weights())
    rng = np.random.default_rng(0)
    seq = rng.normal(size=(2, 5, 3)).astype("float32")
    padded = np.concatenate([seq, np.zeros((2, 3, 3), "float32")], axis=1)
    np.testing.assert_allclose(long_model.predict(padded, verbose=0), short_model.predict(seq, verbose=0), atol=1e-5)
    unmasked = build_model(spec, spec.resolve({"units": 6, "bidirectional": bidirectional}), _sequence_spec(8))
    unmasked.set_weights(long_model.get_weights())
    assert not np.allclose(unmasked.predict(padded, verbose=0), short_model.predict(seq, verbose=0), atol=1e-5)


def test_images_read_row_by_row(runs_dir):
    run = train("bilstm", "digits", runs_dir=runs_dir, verbose=0, **{**TINY, "epochs": 3, "units": 16})
    assert run.model.get_layer("rows").output.shape[1:] == (8, 8)  # 8 steps of 8 pixels
    assert isinstance(run.model.get_layer("bilstm1").forward_layer.units, int)
    assert run.metrics["test_accuracy"] > 2 * run.metrics["baseline_test_accuracy"]


def test_stacked_lstm_depth_and_widths():
    spec = get_spec("stacked_lstm")
    ds = _sequence_spec(7)
    model = build_model(spec, spec.resolve({"widths": [12, 6]}), ds)
    assert model.get_layer("lstm1").units == 12 and model.get_layer("lstm2").units == 6
    assert model.get_layer("lstm1").return_sequences and not model.get_layer("lstm2").return_sequences
    assert model.get_layer("lstm1").recurrent_dropout == pytest.approx(0.1)
    with pytest.raises(ZooError, match="many-to-many"):
        build_model(spec, spec.resolve({"output": "sequence"}), ds)


def test_text_classification_on_tfds_mock_data(tmp_path, runs_dir):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=40):
        ds = load("imdb_reviews", data_dir=tmp_path)
    assert ds.spec.input_kind == "text" and ds.spec.num_classes == 2
    vocabulary = ds.spec.preprocessing["vocabulary"]
    assert vocabulary and "" not in vocabulary[:1]
    run = train("lstm", ds, runs_dir=runs_dir, verbose=0, embedding_dim=8, max_length=12, **TINY)
    model = Run.load(run.dir).model  # TextVectorization and the vocabulary are saved in model.keras
    assert [layer.name for layer in model.layers[:3]] == ["text", "vectorize", "embedding"]
    assert model.get_layer("embedding").mask_zero
    probs = model.predict(np.array(["a fine film", vocabulary[0]], dtype=object), verbose=0)
    assert probs.shape == (2, 1) and np.all((probs >= 0) & (probs <= 1))
