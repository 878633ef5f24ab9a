"""zoo serve over gRPC, driven by TensorFlow Serving's own client stubs, unchanged:
PredictionService (Predict, Classify, Regress, MultiInference, GetModelMetadata)
and ModelService (GetModelStatus, HandleReloadConfigRequest), with its error
codes; the server reads a TensorFlow Serving model config (two models, a specific
version policy, labels) and batches concurrent requests."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from serve_helpers import Server, http, iris_model, iris_rows, regression_model

from zoo import export as zexport

grpc = pytest.importorskip("grpc")
CONFIG = """
model_config_list {
  config {
    name: "iris"
    base_path: "models/iris"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: "stable" value: 1 }
    version_labels { key: "canary" value: 2 }
  }
  config { name: "reg" base_path: "models/reg" }
}
"""
BATCHING = "max_batch_size { value: 64 }\nbatch_timeout_micros { value: 5000 }\nnum_batch_threads { value: 2 }\n"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grpc")
    models = {}
    for version, seed in ((1, 0), (2, 1)):
        model, spec = iris_model(seed)
        zexport.export_model(model, spec, "classification", name="iris", version=version, out=tmp / "models")
        models[version] = (model, spec)
    reg, reg_spec = regression_model()
    zexport.export_model(reg, reg_spec, "regression", name="reg", out=tmp / "models")
    (tmp / "models.config").write_text(CONFIG)
    (tmp / "batching.txt").write_text(BATCHING)
    server = Server("--model_config_file", str(tmp / "models.config"), "--port", "any", "--rest_api_port", "any",
                    "--enable_batching", "--batching_parameters_file", str(tmp / "batching.txt"),
                    "--max-body", str(256 * 1024))
    channel = grpc.insecure_channel(server.grpc)
    yield {"server": server, "channel": channel, "models": models, "reg": reg, "tmp": tmp}
    channel.close()
    server.stop()


@pytest.fixture(scope="module")
def stub(setup):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    return prediction_service_pb2_grpc.PredictionServiceStub(setup["channel"])


@pytest.fixture(scope="module")
def model_stub(setup):
    from tensorflow_serving.apis import model_service_pb2_grpc

    return model_service_pb2_grpc.ModelServiceStub(setup["channel"])


def predict_request(x, name="iris", version=None, label=None, signature="", dtype=np.float32):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    request.model_spec.signature_name = signature
    request.inputs["features"].CopyFrom(tf.make_tensor_proto(np.asarray(x, dtype)))
    return request


def outputs(response) -> dict[str, np.ndarray]:
    import tensorflow as tf

    return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}


def expected(setup, version, x):
    model, spec = setup["models"][version]
    return zexport.reference_outputs(model, spec, "classification", x)


def grpc_error(call, *args) -> tuple:
    with pytest.raises(grpc.RpcError) as err:
        call(*args, timeout=30)
    return err.value.code(), err.value.details()


def test_predict_by_latest_version_and_label(setup, stub):
    x = iris_rows(5)
    for kwargs, version in (({}, 2), ({"version": 1}, 1), ({"label": "stable"}, 1), ({"label": "canary"}, 2)):
        response = stub.Predict(predict_request(x, **kwargs), timeout=30)
        assert response.model_spec.name == "iris" and response.model_spec.version.value == version
        assert response.model_spec.signature_name == "serving_default"
        got, want = outputs(response), expected(setup, version, x)
        np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=1e-6)
        np.testing.assert_array_equal(got["class_ids"], want["class_ids"])
    response = stub.Predict(predict_request(x), timeout=30)
    filtered = predict_request(x)
    filtered.output_filter.append("class_ids")
    assert set(stub.Predict(filtered, timeout=30).outputs) == {"class_ids"}


def test_rest_and_grpc_answer_alike(setup, stub):
    x = iris_rows(4, seed=7)
    status, body = http("POST", f"{setup['server'].rest}/v1/models/iris/versions/1:predict", {"inputs": x.tolist()})
    assert status == 200
    got = outputs(stub.Predict(predict_request(x, version=1), timeout=30))
    np.testing.assert_array_equal(np.float32(body["outputs"]["probabilities"]), got["probabilities"])
    assert body["outputs"]["class_ids"] == got["class_ids"].tolist()


def test_metadata_and_status(stub, model_stub):
    from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "iris"
    request.metadata_field.append("signature_def")
    response = stub.GetModelMetadata(request, timeout=30)
    assert response.model_spec.version.value == 2
    defs = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(defs)
    assert defs.signature_def["serving_default"].inputs["features"].dtype == 1  # DT_FLOAT
    assert defs.signature_def["classification"].method_name == "tensorflow/serving/classify"
    del request.metadata_field[:]
    assert grpc_error(stub.GetModelMetadata, request)[0] == grpc.StatusCode.INVALID_ARGUMENT

    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "iris"
    versions = model_stub.GetModelStatus(status, timeout=30).model_version_status
    assert sorted((v.version, get_model_status_pb2.ModelVersionStatus.State.Name(v.state), v.status.error_code)
                  for v in versions) == [(1, "AVAILABLE", 0), (2, "AVAILABLE", 0)]
    status.model_spec.version.value = 9
    assert grpc_error(model_stub.GetModelStatus, status) == (grpc.StatusCode.NOT_FOUND,
                                                             "Could not find version 9 of model iris")


def _examples(input_proto, rows):
    for row in rows:
        input_proto.example_list.examples.add().features.feature["features"].float_list.value.extend(row.tolist())


def test_classify_regress_and_multi_inference(setup, stub):
    from tensorflow_serving.apis import classification_pb2, inference_pb2, regression_pb2

    x = iris_rows(3, seed=3)
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "iris"
    _examples(request.input, x)
    result = stub.Classify(request, timeout=30)
    assert result.model_spec.signature_name == "classification" and result.model_spec.version.value == 2
    scores = [[c.score for c in item.classes] for item in result.result.classifications]
    np.testing.assert_allclose(scores, expected(setup, 2, x)["probabilities"], atol=1e-6)
    assert [c.label for c in result.result.classifications[0].classes] == ["setosa", "versicolor", "virginica"]

    r = regression_pb2.RegressionRequest()
    r.model_spec.name = "reg"
    for row in ([1.0, 2.0], [0.5, -1.0]):
        r.input.example_list.examples.add().features.feature["features"].float_list.value.extend(row)
    values = [v.value for v in stub.Regress(r, timeout=30).result.regressions]
    np.testing.assert_allclose(values, setup["reg"].predict(np.float32([[1, 2], [0.5, -1]]), verbose=0)[:, 0], atol=1e-5)

    multi = inference_pb2.MultiInferenceRequest()
    task = multi.tasks.add()
    task.model_spec.name, task.model_spec.signature_name = "iris", "classification"
    task.method_name = "tensorflow/serving/classify"
    _examples(multi.input, x[:1])
    (answer,) = stub.MultiInference(multi, timeout=30).results
    np.testing.assert_allclose([c.score for c in answer.classification_result.classifications[0].classes],
                               scores[0], atol=1e-7)
    request.model_spec.name = "reg"
    assert grpc_error(stub.Classify, request)[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_error_codes(stub):
    x = iris_rows(1)
    cases = [
        (predict_request(x, name="nope"), grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)"),
        (predict_request(x, version=7), grpc.StatusCode.NOT_FOUND, "Servable not found for request: Specific(iris, 7)"),
        (predict_request(x, version=-1), grpc.StatusCode.NOT_FOUND, "Specific(iris, -1)"),
        (predict_request(x, label="nope"), grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label: nope"),
        (predict_request(x, signature="nope"), grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "nope" not found.'),
        (predict_request(x, dtype=np.float64), grpc.StatusCode.INVALID_ARGUMENT, "to be float but double is provided"),
        (predict_request(x[:, :3]), grpc.StatusCode.INVALID_ARGUMENT, "shape [1, 3]"),
        (predict_request([[1.0, np.nan, 2.0, 3.0]]), grpc.StatusCode.INVALID_ARGUMENT, "non-finite"),
        (predict_request(np.zeros((100, 4))), grpc.StatusCode.INVALID_ARGUMENT,
         "Task size 100 is larger than maximum input batch size 64"),
        (predict_request(np.zeros((20_000, 4))), grpc.StatusCode.RESOURCE_EXHAUSTED, ""),  # > --max-body bytes
    ]
    for request, code, fragment in cases:
        got, details = grpc_error(stub.Predict, request)
        assert got == code and fragment in details, (code, details)
    missing = predict_request(x)
    missing.inputs["extra"].CopyFrom(missing.inputs["features"])
    assert grpc_error(stub.Predict, missing)[1].startswith("input size does not match signature: 2!=1")
    assert outputs(stub.Predict(predict_request(x), timeout=30))["probabilities"].shape == (1, 3)


def test_batching_gives_each_caller_its_own_rows(setup, stub):
    """16 concurrent callers of 1-3 rows: batches of several requests run, every answer is the caller's."""
    rows = [iris_rows(1 + i % 3, seed=100 + i) for i in range(48)]
    barrier = threading.Barrier(16)

    def one(i):
        if i < 16:
            barrier.wait()
        return i, outputs(stub.Predict(predict_request(rows[i], version=1), timeout=60))

    before = _batches(setup)
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, range(48)))
    for i, got in results:
        want = expected(setup, 1, rows[i])
        np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=1e-6)
        np.testing.assert_array_equal(got["class_ids"], want["class_ids"])
    count, total = (a - b for a, b in zip(_batches(setup), before))
    assert total == sum(len(r) for r in rows)  # every example ran, in fewer calls than requests
    assert count < len(rows)


def _batches(setup) -> tuple[float, float]:
    import urllib.request

    text = urllib.request.urlopen(f"{setup['server'].rest}/monitoring/prometheus/metrics", timeout=30).read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith(":tensorflow:serving:batching_session:batch_size_") and 'model_name="iris"' in line:
            values[line.split("{")[0].rsplit("_", 1)[1]] = float(line.rsplit(" ", 1)[1])
    return values.get("count", 0.0), values.get("sum", 0.0)


def test_reload_config(setup, stub, model_stub):
    """Last: HandleReloadConfigRequest serves exactly the new config (reg goes, iris keeps
    the latest version only, stable moves to 2); a label on a version that is not
    loaded is FAILED_PRECONDITION."""
    from tensorflow_serving.apis import get_model_status_pb2, model_management_pb2
    from tensorflow_serving.config import model_server_config_pb2

    def reload(labels):
        request = model_management_pb2.ReloadConfigRequest()
        config = request.config.model_config_list.config.add()
        config.name, config.base_path = "iris", str(setup["tmp"] / "models" / "iris")
        config.model_version_policy.latest.num_versions = 1
        for label, version in labels.items():
            config.version_labels[label] = version
        assert isinstance(request.config, model_server_config_pb2.ModelServerConfig)
        return model_stub.HandleReloadConfigRequest(request, timeout=120)

    assert reload({"stable": 2}).status.error_code == 0
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "iris"
    states = {v.version: v.state for v in model_stub.GetModelStatus(status, timeout=30).model_version_status}
    assert states == {2: get_model_status_pb2.ModelVersionStatus.AVAILABLE, 1: get_model_status_pb2.ModelVersionStatus.END}
    assert stub.Predict(predict_request(iris_rows(1), label="stable"), timeout=30).model_spec.version.value == 2
    assert grpc_error(stub.Predict, predict_request(iris_rows(1), name="reg"))[0] == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        reload({"stable": 2, "next": 3})
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "version 3 of model iris" in err.value.details()
    assert setup["server"].alive()
