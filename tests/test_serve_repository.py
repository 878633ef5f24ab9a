"""zoo serve's model repository and servable API in-process: version policies,
labels, model config files, load retries, out-of-order files, warm-up replay,
saved_model.pbtxt, and the batcher's parameters and padding."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from serve_helpers import iris_model, iris_rows

from zoo import export as zexport
from zoo.serve_api import ModelSpec, ServingAPI
from zoo.serve_repository import (ModelSource, Policy, Repository, config_sources, parse_model_config,
                                  version_dirs)
from zoo.serve_status import Code, ServingError


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """One exported iris version (copied into each test's layout)."""
    model, spec = iris_model()
    return zexport.export_model(model, spec, "classification", name="iris", out=tmp_path_factory.mktemp("export"))


def layout(root: Path, exported: Path, versions) -> Path:
    for version in versions:
        shutil.copytree(exported, root / "iris" / str(version))
    return root


def states(repo: Repository, name: str = "iris") -> dict[int, str]:
    return {v: s.state for v, s in repo.models.get(name, {}).items()}


def test_policies_select_versions():
    assert Policy().select([1, 3, 2]) == {3}
    assert Policy("latest", 2).select([1, 3, 2]) == {2, 3}
    assert Policy("all").select([1, 2]) == {1, 2}
    assert Policy("specific", versions=(1, 5)).select([1, 2, 3]) == {1}
    assert Policy.parse("latest:3") == Policy("latest", 3) and Policy.parse("all") == Policy("all")
    for bad in ("newest", "latest:0", "all:2"):
        with pytest.raises(ValueError):
            Policy.parse(bad)


def test_model_config_parsing(tmp_path):
    config = parse_model_config("""model_config_list {
        config { name: "a" base_path: "x/a" model_version_policy { latest { num_versions: 2 } } }
        config { name: "b" base_path: "/abs/b" model_version_policy { all {} } version_labels { key: "s" value: 4 } }
    }""")
    a, b = config_sources(config, tmp_path)
    assert (a.name, a.base_path, a.policy) == ("a", tmp_path / "x/a", Policy("latest", 2))
    assert (b.base_path, b.policy, dict(b.labels)) == (Path("/abs/b"), Policy("all"), {"s": 4})
    for text, fragment in [("model_config_list { config { name: 'a' base_path: '/a' } config { name: 'a' "
                            "base_path: '/b' } }", "multiple times"),
                           ("model_config_list { config { name: 'a' } }", "needs a name and a base_path"),
                           ("model_config_list { config { name: 'a' base_path: '/a' model_platform: 'onnx' } }",
                            "platform"),
                           ("custom_model_config { }", "Only ModelConfigList"),
                           ("model_config_list { nonsense: 1 }", "cannot parse")]:
        with pytest.raises(ServingError, match=fragment):
            config_sources(parse_model_config(text), tmp_path)


def test_latest_policy_unloads_old_versions_and_labels_need_available_versions(tmp_path, exported):
    root = layout(tmp_path, exported, [1, 2])
    (root / "iris" / "labels.json").write_text('{"old": 1, "new": 2}')
    repo = Repository(root, policy=Policy())
    repo.refresh()
    assert states(repo) == {2: "AVAILABLE"}  # version 1 was never wanted: never loaded
    assert repo.labels == {"iris": {"new": 2}}
    assert repo.label_problems == ["Request to assign label to version 1 of model iris, which is not currently "
                                   "available for inference"]
    with pytest.raises(ServingError) as err:
        repo.resolve("iris", label="old")
    assert err.value.code == Code.INVALID_ARGUMENT and err.value.status == 400
    shutil.copytree(exported, root / "iris" / "3")
    repo.refresh()
    assert states(repo) == {3: "AVAILABLE", 2: "END"} and repo.resolve("iris").version == 3
    assert repo.labels == {}  # "new" named version 2, unloaded now


def test_a_broken_newest_version_keeps_the_old_one_serving(tmp_path, exported):
    """TensorFlow Serving's availability-preserving policy: the latest version failing,
    the one before stays AVAILABLE."""
    root = layout(tmp_path, exported, [1])
    repo = Repository(root, policy=Policy(), max_load_retries=0)
    repo.refresh()
    broken = root / "iris" / "2"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"junk")
    repo.refresh()
    assert states(repo) == {1: "AVAILABLE", 2: "END"}
    assert repo.models["iris"][2].error.code == Code.UNKNOWN
    assert repo.resolve("iris").version == 1


def test_failed_loads_are_retried_then_given_up(tmp_path, exported):
    (tmp_path / "iris" / "1").mkdir(parents=True)
    (tmp_path / "iris" / "1" / "saved_model.pb").write_bytes(b"junk")
    repo = Repository(tmp_path, max_load_retries=2, retry_interval=0)
    attempts = []
    repo.on_load = lambda servable, seconds: attempts.append(servable.state)
    for _ in range(5):
        repo.refresh()
    assert attempts == ["LOADING", "LOADING", "END"]  # the first attempt and two retries
    assert repo.models["iris"][1].attempts == 3


def test_version_whose_files_arrive_out_of_order_is_loaded_once_complete(tmp_path, exported):
    """saved_model.pb first, variables later (a copy in the wrong order): the load fails,
    then is retried as soon as the files change, without touching saved_model.pb."""
    target = tmp_path / "iris" / "1"
    target.mkdir(parents=True)
    shutil.copy2(exported / "saved_model.pb", target / "saved_model.pb")
    repo = Repository(tmp_path, retry_interval=3600)
    repo.refresh()
    assert states(repo) == {1: "LOADING"} and repo.models["iris"][1].error is not None
    for child in exported.iterdir():
        if child.name != "saved_model.pb":
            (shutil.copytree if child.is_dir() else shutil.copy2)(child, target / child.name)
    repo.refresh()
    assert states(repo) == {1: "AVAILABLE"}


def test_overwritten_version_is_reloaded(tmp_path):
    import keras

    from zoo.spec import DataSpec

    spec = DataSpec(name="t", task="regression", input_shape=(2,), num_targets=1, preprocessing={"type": "none"})
    repo = Repository(tmp_path)
    x = np.ones((1, 2), "float32")
    served = []
    for _ in range(2):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        zexport.export_model(model, spec, "regression", name="m", version=1, out=tmp_path, overwrite=True)
        repo.refresh()
        servable = repo.resolve("m")
        np.testing.assert_allclose(servable.run("serving_default", {"features": x})["predictions"],
                                   model.predict(x, verbose=0), atol=1e-5)
        served.append(servable)
    assert served[0] is not served[1]


def test_saved_model_pbtxt_versions_load(tmp_path, exported):
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    target = layout(tmp_path, exported, [1]) / "iris" / "1"
    proto = saved_model_pb2.SavedModel.FromString((target / "saved_model.pb").read_bytes())
    (target / "saved_model.pbtxt").write_text(text_format.MessageToString(proto))
    (target / "saved_model.pb").unlink()
    assert list(version_dirs(tmp_path / "iris")) == [1]
    repo = Repository(tmp_path)
    repo.refresh()
    assert states(repo) == {1: "AVAILABLE"}
    assert set(repo.resolve("iris").signatures) >= {"serving_default", "classification"}


def test_warmup_is_replayed_before_available_and_a_corrupt_file_fails_with_data_loss(tmp_path, exported):
    root = layout(tmp_path, exported, [1, 2, 3])
    warmup = Path("assets.extra") / "tf_serving_warmup_requests"
    data = (root / "iris" / "2" / warmup).read_bytes()
    (root / "iris" / "2" / warmup).write_bytes(data[: len(data) // 2])  # cut short: not a TFRecord any more
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(root / "iris" / "3" / warmup)) as writer:
        writer.write(b"a record that is no PredictionLog \xff\xff")
    calls = []
    api_box = []
    repo = Repository(root, policy=Policy("all"), max_load_retries=0, warmup=lambda s: api_box[0].warmup(s))
    api = ServingAPI(repo)
    api_box.append(api)
    real_run = api.run
    api.run = lambda servable, signature, *a, **k: calls.append((servable.state, signature.name)) or real_run(
        servable, signature, *a, **k)
    repo.refresh()
    assert states(repo) == {1: "AVAILABLE", 2: "END", 3: "END"}
    # export's warm-up file: batch 1 and batch 8, to serving_default and to the classify signature
    assert calls == [("LOADING", "serving_default"), ("LOADING", "classification")] * 2
    assert repo.models["iris"][2].error.code == Code.DATA_LOSS
    assert "Please verify your warmup data is in TFRecord format" in str(repo.models["iris"][2].error)
    assert repo.models["iris"][3].status()["status"]["error_code"] == "INVALID_ARGUMENT"
    x = iris_rows(2)
    assert api.predict(ModelSpec("iris"), {"features": x}).servable.version == 1


def test_config_file_is_polled_and_a_broken_one_keeps_the_last(tmp_path, exported, capsys):
    from zoo.serve import ServerOptions, build_repository

    layout(tmp_path, exported, [1])
    config = tmp_path / "models.config"
    config.write_text('model_config_list { config { name: "iris" base_path: "iris" } }')
    repo, _, poll = build_repository(ServerOptions(model_config_file=str(config)))
    repo.refresh()
    assert list(repo.models) == ["iris"]
    config.write_text('model_config_list { config { name: "flowers" base_path: "iris" } }')
    poll()
    assert list(repo.models) == ["flowers"] and states(repo, "flowers") == {1: "AVAILABLE"}
    config.write_text("model_config_list { config { name: ")
    poll()
    assert "keeping the previous config" in capsys.readouterr().err
    assert list(repo.models) == ["flowers"]
    assert repo.sources() == [ModelSource("flowers", tmp_path / "iris")]


def test_batching_parameters_file():
    from zoo.serve_batching import BatchingOptions

    options = BatchingOptions.parse("max_batch_size { value: 8 } batch_timeout_micros { value: 100 }\n"
                                    "num_batch_threads { value: 3 } max_enqueued_batches { value: 2 }\n"
                                    "allowed_batch_sizes: 4 allowed_batch_sizes: 8 thread_pool_name { value: 'x' }")
    assert options == BatchingOptions(8, 100, 3, 2, (4, 8))
    assert BatchingOptions.read(None) == BatchingOptions()
    for text, fragment in [("max_batch_size: 3", "cannot parse"), ("max_batch_size { value: 8 } "
                           "allowed_batch_sizes: 4", "end with max_batch_size"), ("num_batch_threads { value: 0 }",
                                                                                 "at least 1")]:
        with pytest.raises(ValueError, match=fragment):
            BatchingOptions.parse(text)


def test_batcher_pads_to_allowed_sizes_and_returns_each_callers_rows():
    from concurrent.futures import ThreadPoolExecutor

    from zoo.serve_batching import Batcher, BatchingOptions

    seen = []

    class Doubler:  # stands in for a servable: records the batch sizes it is called with
        name = "m"

        def run(self, signature, arrays):
            seen.append(len(arrays["x"]))
            return {"y": arrays["x"] * 2}

    class Sig:
        name = "serving_default"

    servable = Doubler()
    batcher = Batcher(BatchingOptions(max_batch_size=8, batch_timeout_micros=20_000, num_batch_threads=1,
                                      allowed_batch_sizes=(4, 8)))
    try:
        inputs = [np.arange(i, i + 1 + i % 2, dtype="float32")[:, None] for i in range(6)]
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda x: batcher.run(servable, Sig(), {"x": x}, None)["y"], inputs))
        for x, y in zip(inputs, answers):
            np.testing.assert_array_equal(y, x * 2)
        assert all(size in (4, 8) for size in seen) and len(seen) < len(inputs)
        with pytest.raises(ServingError, match="larger than maximum input batch size 8"):
            batcher.run(servable, Sig(), {"x": np.zeros((9, 1))}, None)
    finally:
        batcher.stop()


def test_large_bodies_are_decoded_in_the_decoder_process(tmp_path, exported):
    """A body over LARGE_BODY is parsed in another process (a long parse would hold
    the server's GIL); the answer is the same, and its errors come back as they are."""
    import json

    from werkzeug.test import Client

    from zoo.serve_rest import LARGE_BODY, Decoder, RestApp

    repo = Repository(layout(tmp_path, exported, [1]))
    repo.refresh()
    app = RestApp(ServingAPI(repo, max_batch=50_000), max_body=64 << 20, decoder=Decoder())
    try:
        x = iris_rows(20_000)
        body = json.dumps({"instances": x.tolist()}).encode()
        assert len(body) > LARGE_BODY
        answer = Client(app).post("/v1/models/iris:predict", data=body)
        assert answer.status_code == 200
        want = repo.resolve("iris").run("serving_default", {"features": x})
        assert [p["class_ids"] for p in answer.json["predictions"]] == want["class_ids"].tolist()
        app.api.max_batch = 10_000
        answer = Client(app).post("/v1/models/iris:predict", data=body)
        assert answer.status_code == 413 and "--max-batch" in answer.json["error"]
    finally:
        app.decoder.stop()


def test_tensorflow_model_server_command_line_is_accepted(tmp_path, exported):
    """tensorflow_model_server's flags, in its --flag=value form, name the same options."""
    from zoo.cli import _commands, parser
    from zoo.serve import ServerOptions, build_repository, cmd_serve

    layout(tmp_path, exported, [1, 2])
    args = parser(_commands(["serve"])).parse_args(["serve", "--port=8500", "--rest_api_port=8501", "--model_name=flowers",
                                f"--model_base_path={tmp_path / 'iris'}", "--enable_batching=true",
                                "--rest_api_timeout_in_ms=250", "--file_system_poll_wait_seconds=5",
                                "--rest_api_enable_cors_support=false"])
    assert args.run is cmd_serve
    assert (args.port, args.rest_api_port, args.enable_batching, args.cors, args.poll) == (8500, 8501, True, False, 5)
    repo, _, poll = build_repository(ServerOptions(model_name="flowers", model_base_path=str(tmp_path / "iris")))
    repo.refresh()
    assert poll is None and states(repo, "flowers") == {2: "AVAILABLE"}  # TensorFlow Serving's default: the latest


def test_a_request_that_waits_past_its_deadline_is_deadline_exceeded(tmp_path, exported):
    import time

    repo = Repository(layout(tmp_path, exported, [1]))
    repo.refresh()
    api = ServingAPI(repo, max_concurrent_runs=1, timeout=0.05)
    api._runs.acquire()  # the one run slot is busy
    try:
        with pytest.raises(ServingError) as err:
            api.predict(ModelSpec("iris"), {"features": iris_rows(1)})
        assert err.value.code == Code.DEADLINE_EXCEEDED and err.value.status == 504
    finally:
        api._runs.release()
    assert api.predict(ModelSpec("iris"), {"features": iris_rows(1)}, deadline=time.monotonic() + 30).outputs
