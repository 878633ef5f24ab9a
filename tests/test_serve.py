"""zoo serve over REST: the real server in a subprocess on free loopback ports,
spoken to as TensorFlow Serving's REST API documents (status, metadata,
predict in row/columnar/b64 form, classify, regress, errors), with strict JSON
types, version policy, metrics and CORS; then a suite of malformed and hostile
requests, each a 4xx while the server keeps answering."""

from __future__ import annotations

import base64
import json
import signal
import socket
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from serve_helpers import Server, http, iris_model, iris_rows, regression_model, save_typed_model

from zoo import export as zexport

MAX_BODY = 64 * 1024
MAX_BATCH = 64


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """iris (classifier, label stable -> 1), reg (regressor), typed (int/bool/string
    inputs), broken (not a SavedModel), and the server on them."""
    root = tmp_path_factory.mktemp("serve") / "models"
    iris, iris_spec = iris_model()
    zexport.export_model(iris, iris_spec, "classification", name="iris", out=root)
    (root / "iris" / "labels.json").write_text(json.dumps({"stable": 1}))
    reg, reg_spec = regression_model()
    zexport.export_model(reg, reg_spec, "regression", name="reg", out=root)
    save_typed_model(root / "typed" / "1")
    (root / "broken" / "1").mkdir(parents=True)
    (root / "broken" / "1" / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    server = Server(str(root), "--port", "0", "--rest_api_port", "any", "--poll", "0.3", "--max-body",
                    str(MAX_BODY), "--max-batch", str(MAX_BATCH), "--threads", "4", "--max_num_load_retries", "0",
                    "--cors")
    yield {"server": server, "url": server.rest, "root": root, "iris": (iris, iris_spec), "reg": reg}
    server.stop()


@pytest.fixture(scope="module")
def url(setup):
    return setup["url"]


@pytest.fixture(scope="module")
def raw_x():
    return iris_rows(6)


@pytest.fixture(scope="module")
def expected(setup, raw_x):
    model, spec = setup["iris"]
    return zexport.reference_outputs(model, spec, "classification", raw_x)


def test_binds_loopback_rest_only(setup):
    assert setup["url"].startswith("http://127.0.0.1:") and setup["server"].grpc is None


def test_status(url):
    status, body = http("GET", f"{url}/v1/models/iris")
    assert status == 200
    assert body == {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                              "status": {"error_code": "OK", "error_message": ""}}]}
    assert http("GET", f"{url}/v1/models/iris/versions/1")[1]["model_version_status"][0]["version"] == "1"
    assert http("GET", f"{url}/v1/models/iris/labels/stable")[1]["model_version_status"][0]["version"] == "1"


def test_metadata_lists_predict_and_classify_signatures(url):
    status, body = http("GET", f"{url}/v1/models/iris/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": "iris", "signature_name": "", "version": "1"}
    defs = body["metadata"]["signature_def"]["signature_def"]
    sig = defs["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    assert sig["inputs"]["features"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in sig["inputs"]["features"]["tensor_shape"]["dim"]] == ["-1", "4"]
    assert set(sig["outputs"]) == {"probabilities", "class_ids"}
    assert defs["classification"]["method_name"] == "tensorflow/serving/classify"
    assert defs["classification"]["inputs"]["inputs"]["dtype"] == "DT_STRING"
    assert set(defs["classification"]["outputs"]) == {"classes", "scores"}
    regress = http("GET", f"{url}/v1/models/reg/metadata")[1]["metadata"]["signature_def"]["signature_def"]
    assert regress["regression"]["method_name"] == "tensorflow/serving/regress"


def test_predict_row_format_matches_the_keras_model(url, raw_x, expected):
    status, body = http("POST", f"{url}/v1/models/iris:predict", {"instances": raw_x.tolist()})
    assert status == 200, body
    preds = body["predictions"]
    np.testing.assert_allclose([p["probabilities"] for p in preds], expected["probabilities"], atol=1e-6)
    assert [p["class_ids"] for p in preds] == expected["class_ids"].tolist()
    rows = [{"features": r} for r in raw_x[:2].tolist()]
    for path in ("iris", "iris/versions/1", "iris/labels/stable", "IRIS/VERSIONS/1".replace("IRIS", "iris")):
        status, body = http("POST", f"{url}/v1/models/{path}:predict", {"instances": rows})
        assert status == 200 and [p["class_ids"] for p in body["predictions"]] == expected["class_ids"][:2].tolist()


def test_predict_columnar_format(url, raw_x, expected):
    for inputs in (raw_x.tolist(), {"features": raw_x.tolist()}):
        status, body = http("POST", f"{url}/v1/models/iris:predict",
                            {"signature_name": "serving_default", "inputs": inputs})
        assert status == 200, body
        np.testing.assert_allclose(body["outputs"]["probabilities"], expected["probabilities"], atol=1e-6)
        assert body["outputs"]["class_ids"] == expected["class_ids"].tolist()


def test_floats_in_shortest_round_trip_form(url, raw_x, expected):
    """float32 outputs are written as float32's shortest round-trip decimal (0.1, not 0.10000000149011612)."""
    import re

    req = urllib.request.Request(f"{url}/v1/models/iris:predict", data=json.dumps({"inputs": raw_x.tolist()}).encode())
    text = urllib.request.urlopen(req, timeout=30).read().decode()
    tokens = re.findall(r"-?\d+\.\d+(?:e-?\d+)?", text)
    assert len(tokens) == expected["probabilities"].size
    np.testing.assert_allclose(np.float32(tokens), expected["probabilities"].ravel(), atol=1e-6)
    assert all(token == str(np.float32(token)) for token in tokens)


def test_classify_and_regress(setup, url, raw_x, expected):
    examples = [{"features": [float(v) for v in row]} for row in raw_x]
    status, body = http("POST", f"{url}/v1/models/iris:classify", {"examples": examples})
    assert status == 200, body
    assert [[label for label, _ in r] for r in body["results"]] == [["setosa", "versicolor", "virginica"]] * 6
    np.testing.assert_allclose([[s for _, s in r] for r in body["results"]], expected["probabilities"], atol=1e-6)
    # a context's features are shared by every example (here: the whole row)
    status, body = http("POST", f"{url}/v1/models/iris:classify",
                        {"context": examples[0], "examples": [{}], "signature_name": "classification"})
    assert status == 200, body
    np.testing.assert_allclose([s for _, s in body["results"][0]], expected["probabilities"][0], atol=1e-6)
    x = np.array([[1.0, 2.0], [-0.5, 0.25]], "float32")
    status, body = http("POST", f"{url}/v1/models/reg:regress",
                        {"examples": [{"features": row} for row in x.tolist()]})
    assert status == 200, body
    np.testing.assert_allclose(body["results"], setup["reg"].predict(x, verbose=0)[:, 0], atol=1e-5)
    status, body = http("POST", f"{url}/v1/models/iris:regress", {"examples": examples})
    assert status == 400 and "No signature was found with the name: regression" in body["error"]


def test_typed_inputs_bytes_outputs_and_b64(url):
    rows = [{"ids": 3, "flags": True, "text": "héllo"}, {"ids": -2, "flags": False, "text": {"b64": "AP8="}}]
    status, body = http("POST", f"{url}/v1/models/typed:predict", {"instances": rows})
    assert status == 200, body
    first, second = body["predictions"]
    assert (first["doubled"], first["negated"], first["text"]) == (6, False, "héllo")
    assert first["text_bytes"] == {"b64": base64.b64encode("héllo".encode()).decode()}
    assert second["text_bytes"] == {"b64": "AP8="}  # bytes that are not UTF-8 come back intact
    assert first["tenth"] == 0.3 and second["tenth"] == -0.2  # float32 written in float32's shortest form
    status, body = http("POST", f"{url}/v1/models/typed:predict",
                        {"inputs": {"ids": [1], "flags": [True], "text": ["a"]}})
    assert status == 200 and body["outputs"]["doubled"] == [2]


@pytest.mark.parametrize("model, instances, fragment", [
    ("typed", [{"ids": 2**40, "flags": True, "text": "a"}], "JSON Value: 1099511627776 Type: Number is not of expected type: int32"),
    ("typed", [{"ids": 1.0, "flags": True, "text": "a"}], "JSON Value: 1.0 Type: Number is not of expected type: int32"),
    ("typed", [{"ids": 1, "flags": 1, "text": "a"}], "JSON Value: 1 Type: Number is not of expected type: bool"),
    ("typed", [{"ids": True, "flags": True, "text": "a"}], "Type: True is not of expected type: int32"),
    ("typed", [{"ids": 1, "flags": True, "text": 7}], "JSON Value: 7 Type: Number is not of expected type: string"),
    ("iris", [[1.0, 2.0, True, 4.0]], "JSON Value: true Type: True is not of expected type: float"),
    ("iris", [[1.0, 2.0, "3", 4.0]], 'JSON Value: "3" Type: String is not of expected type: float'),
    ("iris", [[1.0, 2.0, None, 4.0]], "JSON Value: null Type: Null is not of expected type: float"),
])
def test_strict_types_as_tensorflow_serving(url, model, instances, fragment):
    status, body = http("POST", f"{url}/v1/models/{model}:predict", {"instances": instances})
    assert status == 400
    assert fragment in body["error"] and "Failed to process element: 0" in body["error"]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400", "3.5e38"])
def test_non_finite_inputs_are_refused_not_given_a_class(url, value):
    status, body = http("POST", f"{url}/v1/models/iris:predict", f'{{"instances": [[1.0, 2.0, {value}, 4.0]]}}')
    assert status == 400 and "non-finite" in body["error"] and "index [0, 2]" in body["error"]


@pytest.mark.parametrize("body, fragment", [
    ('{"instances": [[1, 2, 3, 4]]', "JSON Parse error"),
    ("[1, 2]", "Is not object"),
    ('{"rows": [[1, 2, 3, 4]]}', "Missing 'inputs' or 'instances' key"),
    ('{"instances": [[1, 2, 3, 4]], "inputs": [[1, 2, 3, 4]]}', "expecting only one of 'inputs' or 'instances'"),
    ('{"instances": []}', "No values in 'instances' array"),
    ('{"instances": [[1, 2, 3]]}', "shape [1, 3]"),
    ('{"instances": [[[1, 2, 3, 4]]]}', "shape [1, 1, 4]"),
    ('{"instances": [[1, 2, 3, 4], [1, 2]]}', "rectangular"),
    ('{"instances": [{"pixels": [1, 2, 3, 4]}]}', "keys must be equal to: features"),
    ('{"inputs": {"pixels": [[1, 2, 3, 4]]}}', "Missing named input: features in 'inputs' object."),
    ('{"signature_name": "nope", "instances": [[1, 2, 3, 4]]}', 'Serving signature name: "nope" not found'),
    ('{"signature_name": ["x"], "instances": [[1, 2, 3, 4]]}', "'signature_name' key must be a string value"),
])
def test_bad_requests_are_400_with_an_error(url, body, fragment):
    status, answer = http("POST", f"{url}/v1/models/iris:predict", body)
    assert status == 400
    assert fragment in answer["error"]


def test_unknown_model_version_label_and_paths(url):
    row = {"instances": [[1, 2, 3, 4]]}
    assert http("POST", f"{url}/v1/models/nope:predict", row) == (
        404, {"error": "Servable not found for request: Latest(nope)"})
    assert http("POST", f"{url}/v1/models/iris/versions/9:predict", row) == (
        404, {"error": "Servable not found for request: Specific(iris, 9)"})
    assert http("POST", f"{url}/v1/models/iris/labels/canary:predict", row) == (
        400, {"error": "Unrecognized servable version label: canary"})
    assert http("POST", f"{url}/v1/models/iris/versions/-1:predict", row) == (
        400, {"error": "Malformed request: POST /v1/models/iris/versions/-1:predict"})
    status, body = http("POST", f"{url}/v1/models/iris/versions/{'9' * 5000}:predict", row)
    assert status == 400 and "Failed to convert version" in body["error"]
    status, body = http("GET", f"{url}/v1/models/nope")
    assert status == 404 and body["error"] == "Could not find any versions of model nope"
    assert http("GET", f"{url}/v1/models/iris/versions/9") == (404, {"error": "Could not find version 9 of model iris"})
    assert http("GET", f"{url}/v1/models/nope/metadata")[0] == 404
    assert http("GET", f"{url}/v1/models/iris:predict")[0] == 400  # wrong method
    assert http("GET", f"{url}/v1/models") == (400, {"error": "Missing model name in request."})
    assert http("GET", f"{url}/elsewhere")[0] == 404


def test_oversized_body_and_batch_are_413(url):
    status, body = http("POST", f"{url}/v1/models/iris:predict", b"x" * (MAX_BODY + 100))
    assert status == 413 and "limit" in body["error"]
    status, body = http("POST", f"{url}/v1/models/iris:predict", {"instances": [[1.0, 2.0, 3.0, 4.0]] * (MAX_BATCH + 1)})
    assert status == 413 and "--max-batch" in body["error"]
    assert http("POST", f"{url}/v1/models/iris:predict", {"instances": [[1, 2, 3, 4]]})[0] == 200


def test_broken_version_is_reported_and_others_serve(url):
    status, body = http("GET", f"{url}/v1/models/broken")
    assert status == 200
    (entry,) = body["model_version_status"]
    assert entry["state"] == "END" and entry["status"]["error_code"] == "UNKNOWN" and entry["status"]["error_message"]
    assert http("POST", f"{url}/v1/models/broken:predict", {"instances": [[1, 2, 3, 4]]})[0] == 404
    assert http("POST", f"{url}/v1/models/iris:predict", {"instances": [[1, 2, 3, 4]]})[0] == 200


def test_many_concurrent_requests(url, raw_x, expected):
    def one(i: int):
        return i, *http("POST", f"{url}/v1/models/iris:predict", {"instances": raw_x[i % 6: i % 6 + 1].tolist()})

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(one, range(96)))
    for i, status, body in results:
        assert status == 200, body
        assert body["predictions"][0]["class_ids"] == int(expected["class_ids"][i % 6])


def test_cors_preflight(url):
    status, _ = http("OPTIONS", f"{url}/v1/models/iris:predict", headers={"Origin": "http://example.com"})
    assert status == 200
    req = urllib.request.Request(f"{url}/v1/models/iris", headers={"Origin": "http://example.com"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
    status, body = http("OPTIONS", f"{url}/v1/models/iris:predict")
    assert status == 400 and "Origin header is missing" in body["error"]


def test_prometheus_metrics(url):
    before = _metric(url, 'request_count_total{API="predict",entrypoint="REST",model_name="iris",status="OK",version="1"}')
    for _ in range(3):
        http("POST", f"{url}/v1/models/iris:predict", {"instances": [[1, 2, 3, 4]]})
    http("POST", f"{url}/v1/models/iris:predict", {"instances": [[1, 2, 3]]})
    after = _metric(url, 'request_count_total{API="predict",entrypoint="REST",model_name="iris",status="OK",version="1"}')
    assert after - before == 3
    assert _metric(url, 'request_count_total{API="predict",entrypoint="REST",model_name="iris",'
                        'status="INVALID_ARGUMENT",version="1"}') >= 1
    assert _metric(url, 'load_attempt_count_total{model_name="iris",status="OK",version="1"}') == 1
    assert _metric(url, 'load_attempt_count_total{model_name="broken",status="UNKNOWN",version="1"}') >= 1
    assert _metric(url, 'request_latency_count{API="predict",entrypoint="REST",model_name="iris"}') >= 3


def _metric(url: str, sample: str) -> float:
    text = urllib.request.urlopen(f"{url}/monitoring/prometheus/metrics", timeout=30).read().decode()
    for line in text.splitlines():
        if line.startswith(":tensorflow:serving:" + sample):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# --- malformed and hostile requests: each a 4xx, and the server keeps answering -------------------

DEEP = 30_000  # within --max-body: the parser, not the size limit, must refuse it
PREDICT = "/v1/models/iris:predict"
MALFORMED = [  # (name, path, body, expected status)
    ("deep arrays", PREDICT, "[" * DEEP + "]" * DEEP, 400),
    ("deep objects", PREDICT, '{"a":' * (DEEP // 3) + "1" + "}" * (DEEP // 3), 400),
    ("deep instances", PREDICT, '{"instances": ' + "[" * DEEP + "]" * DEEP + "}", 400),
    ("signature_name list", PREDICT, '{"signature_name": ["a"], "instances": [[1,2,3,4]]}', 400),
    ("signature_name object", PREDICT, '{"signature_name": {"a": 1}, "instances": [[1,2,3,4]]}', 400),
    ("signature_name number", PREDICT, '{"signature_name": 3, "instances": [[1,2,3,4]]}', 400),
    ("version of 5000 digits", f"/v1/models/iris/versions/{'7' * 5000}:predict", '{"instances": [[1,2,3,4]]}', 400),
    ("version past int64", "/v1/models/iris/versions/99999999999999999999:predict", '{"instances": [[1,2,3,4]]}', 400),
    ("empty body", PREDICT, "", 400),
    ("whitespace body", PREDICT, "   \n ", 400),
    ("null body", PREDICT, "null", 400),
    ("array body", PREDICT, "[]", 400),
    ("string body", PREDICT, '"instances"', 400),
    ("truncated JSON", PREDICT, '{"instances": [[1, 2', 400),
    ("invalid UTF-8", PREDICT, b'{"instances": [[1, 2, 3, 4]], "x": "\xff\xfe"}', 400),
    ("UTF-16 JSON", PREDICT, '{"instances": [[1, 2, 3, 4]]}'.encode("utf-16"), 400),
    ("instances an object", PREDICT, '{"instances": {"features": [1,2,3,4]}}', 400),
    ("instances a number", PREDICT, '{"instances": 4}', 400),
    ("inputs null", PREDICT, '{"inputs": null}', 400),
    ("nulls in rows", PREDICT, '{"instances": [[null, null, null, null]]}', 400),
    ("ragged rows", PREDICT, '{"instances": [[1,2,3,4],[1,2,3]]}', 400),
    ("objects mixed with lists", PREDICT, '{"instances": [{"features": [1,2,3,4]}, [1,2,3,4]]}', 400),
    ("booleans for floats", PREDICT, '{"instances": [[true, false, true, false]]}', 400),
    ("NaN token", PREDICT, '{"instances": [[NaN, 1, 2, 3]]}', 400),
    ("Infinity token", PREDICT, '{"instances": [[Infinity, 1, 2, 3]]}', 400),
    ("number past double", PREDICT, '{"instances": [[1e999, 1, 2, 3]]}', 400),
    ("int past int32", "/v1/models/typed:predict", '{"instances": [{"ids": 4294967296, "flags": true, "text": "a"}]}', 400),
    ("int past int64", "/v1/models/typed:predict", '{"instances": [{"ids": 99999999999999999999999, "flags": true, "text": "a"}]}', 400),
    ("bad base64", "/v1/models/typed:predict", '{"instances": [{"ids": 1, "flags": true, "text": {"b64": "!!"}}]}', 400),
    ("object not b64", "/v1/models/typed:predict", '{"instances": [{"ids": 1, "flags": true, "text": {"x": "a"}}]}', 400),
    ("unknown signature", PREDICT, '{"signature_name": "x", "instances": [[1,2,3,4]]}', 400),
    ("classify without examples", "/v1/models/iris:classify", '{"instances": [[1,2,3,4]]}', 400),
    ("classify examples an object", "/v1/models/iris:classify", '{"examples": {"features": [1.0]}}', 400),
    ("classify nested feature", "/v1/models/iris:classify", '{"examples": [{"features": [[1.0]]}]}', 400),
    ("classify null feature", "/v1/models/iris:classify", '{"examples": [{"features": null}]}', 400),
    ("classify wrong feature width", "/v1/models/iris:classify", '{"examples": [{"features": [1.0]}]}', 400),
    ("regress a classifier", "/v1/models/iris:regress", '{"examples": [{"features": [1.0, 2.0, 3.0, 4.0]}]}', 400),
    ("unknown verb", "/v1/models/iris:explain", '{"instances": [[1,2,3,4]]}', 400),
    ("encoded junk in the name", "/v1/models/%00%ff:predict", '{"instances": [[1,2,3,4]]}', 404),
    ("too many examples", PREDICT, json.dumps({"instances": [[1.0, 2.0, 3.0, 4.0]] * (MAX_BATCH + 1)}), 413),
    ("body over --max-body", PREDICT, b" " * (MAX_BODY + 1), 413),
]

RAW = [  # (name, raw request bytes, expected status); waitress's own errors are JSON too
    ("negative Content-Length", b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400),
    ("non-numeric Content-Length", b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    ("bad chunk size", b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
    # both lengths: read by Transfer-Encoding alone (RFC 9112), so the body is empty and the GET after it is a
    # request of its own, answered after this 400
    ("request smuggling (CL and TE)", b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked"
                                      b"\r\n\r\n0\r\n\r\nGET /v1/models/iris HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("unknown transfer encoding", b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ("header flood", b"GET %s HTTP/1.1\r\nHost: x\r\n" + b"X-Flood: " + b"a" * 300_000 + b"\r\n\r\n", 431),
    ("garbage request line", b"HELLO\r\n\r\n", 400),
    ("body past waitress's limit", b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n", 413),
]


def _raw(url: str, data: bytes, timeout: float = 20) -> tuple[int, bytes]:
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                    break
        except (ConnectionResetError, socket.timeout):
            pass
    answer = b"".join(chunks)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    return int(answer.split(b" ", 2)[1]), body[:length]  # the first answer (a pipelined request may follow)


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


@pytest.mark.parametrize("name, path, body, want", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_request_is_4xx_and_json(url, name, path, body, want):
    status, answer = http("POST", url + path, body)
    assert status == want, answer
    assert isinstance(answer.get("error"), str) and answer["error"]


@pytest.mark.parametrize("name, data, want", RAW, ids=[r[0] for r in RAW])
def test_malformed_http_is_4xx_and_json(url, name, data, want):
    status, body = _raw(url, data.replace(b"%s", PREDICT.encode()) if b"%s" in data else data)
    assert status == want
    assert json.loads(body)["error"]


def test_server_answers_after_the_malformed_requests(url, setup):
    assert setup["server"].alive()
    assert http("POST", f"{url}/v1/models/iris:predict", {"instances": [[1, 2, 3, 4]]})[0] == 200


def test_slow_clients_do_not_starve_the_others(url):
    """150 clients send headers then trickle their body (more than waitress's default 100
    connections): ordinary requests are still answered at once."""
    host, port = url.split("//")[1].split(":")
    slow = []
    try:
        for _ in range(150):
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{".encode())
            slow.append(sock)
        started = time.monotonic()
        for _ in range(5):
            assert http("POST", f"{url}{PREDICT}", {"instances": [[1, 2, 3, 4]]}, timeout=5)[0] == 200
        assert time.monotonic() - started < 5
        for sock in slow[:50]:  # and a client that disconnects mid-body costs nothing
            sock.sendall(b'"instances"')
            sock.close()
    finally:
        for sock in slow:
            sock.close()
    assert http("GET", f"{url}/v1/models/iris")[0] == 200


# --- versions as the server runs (last: they change the repository) ------------------------------


def test_new_version_replaces_the_old_under_the_default_policy(setup, url, raw_x, expected):
    """TensorFlow Serving's default policy serves the latest version only: v2 appears,
    becomes AVAILABLE, then v1 is unloaded (END), and the label on v1 goes away."""
    model, spec = setup["iris"]
    v2 = zexport.export_model(model, spec, "classification", name="iris", out=setup["root"])
    assert v2.name == "2"
    deadline = time.monotonic() + 60
    states = {}
    while time.monotonic() < deadline:
        states = {s["version"]: s["state"] for s in http("GET", f"{url}/v1/models/iris")[1]["model_version_status"]}
        if states == {"2": "AVAILABLE", "1": "END"}:
            break
        time.sleep(0.3)
    assert states == {"2": "AVAILABLE", "1": "END"}
    status, body = http("POST", f"{url}/v1/models/iris/versions/2:predict", {"instances": raw_x[:3].tolist()})
    assert status == 200 and [p["class_ids"] for p in body["predictions"]] == expected["class_ids"][:3].tolist()
    assert http("POST", f"{url}/v1/models/iris/versions/1:predict", {"instances": raw_x[:1].tolist()})[0] == 404
    assert http("POST", f"{url}/v1/models/iris/labels/stable:predict", {"instances": raw_x[:1].tolist()})[0] == 400


def test_graceful_shutdown_on_sigterm(setup, url):
    """Last: SIGTERM stops the server with status 0."""
    proc = setup["server"].proc
    assert http("GET", f"{url}/v1/models/iris")[0] == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/v1/models/iris", timeout=5)


def test_serve_refuses_missing_root_and_the_old_port_usage(tmp_path, capsys):
    from zoo.cli import main

    assert main(["serve", str(tmp_path / "none")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["serve", str(tmp_path), "--port", "8501"]) == 2  # the old REST --port, now gRPC's
    err = capsys.readouterr().err
    assert err.startswith("zoo: error:") and "--rest_api_port" in err and "gRPC" in err
    assert main(["serve", str(tmp_path), "--port", "0", "--rest_api_port", "0"]) == 2
