"""zoo serve: the real server in a subprocess on a free loopback port, spoken to
over HTTP with TensorFlow Serving's REST API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from zoo import export as zexport

MAX_BODY = 64 * 1024
SERVER = "import sys; from zoo.cli import main; sys.exit(main(sys.argv[1:]))"


def http(method: str, url: str, body: bytes | str | dict | None = None, timeout: float = 60) -> tuple[int, dict]:
    """(status, JSON body) of one request; error statuses are returned, not raised."""
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"raw": raw.decode(errors="replace")}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny MLP trained once, exported as v1, a broken model, labels, and the
    server running on them."""
    from zoo.training import train

    tmp = tmp_path_factory.mktemp("serve")
    run = train("mlp", "iris", runs_dir=tmp / "runs", verbose=0, units=8, epochs=2)
    root = tmp / "saved_models"
    zexport.export_run(run, out=root)
    (root / "mlp" / "labels.json").write_text(json.dumps({"stable": 1}))
    broken = root / "broken" / "1"
    broken.mkdir(parents=True)
    (broken / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    proc = subprocess.Popen([sys.executable, "-c", SERVER, "serve", str(root), "--port", "0", "--poll", "0.3",
                             "--max-body", str(MAX_BODY), "--threads", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    url, lines = None, []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("serving "):
            url = line.split(" on ")[-1].strip()
            break
    if url is None:
        proc.kill()
        pytest.fail("server did not start:\n" + "".join(lines) + proc.stderr.read()[-3000:])
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    yield {"url": url, "run": run, "root": root, "proc": proc}
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def url(setup):
    return setup["url"]


@pytest.fixture(scope="module")
def raw_x(setup):
    run = setup["run"]
    return zexport.raw_from_preprocessed(run.data_spec.preprocessing, run.dataset.arrays["test"][0])


@pytest.fixture(scope="module")
def expected(setup, raw_x):
    run = setup["run"]
    return zexport.reference_outputs(run.model, run.data_spec, "classification", raw_x)


def test_binds_loopback(url):
    assert url.startswith("http://127.0.0.1:")


def test_status(url):
    status, body = http("GET", f"{url}/v1/models/mlp")
    assert status == 200
    assert body == {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                              "status": {"error_code": "OK", "error_message": ""}}]}
    assert http("GET", f"{url}/v1/models/mlp/versions/1")[1]["model_version_status"][0]["version"] == "1"
    assert http("GET", f"{url}/v1/models/mlp/labels/stable")[1]["model_version_status"][0]["version"] == "1"


def test_metadata(url):
    status, body = http("GET", f"{url}/v1/models/mlp/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": "mlp", "signature_name": "", "version": "1"}
    sig = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    features = sig["inputs"]["features"]
    assert features["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in features["tensor_shape"]["dim"]] == ["-1", "4"]
    assert set(sig["outputs"]) == {"probabilities", "class_ids"}
    assert sig["outputs"]["class_ids"]["dtype"] == "DT_INT64"


def test_predict_row_format_matches_the_keras_model(url, raw_x, expected):
    status, body = http("POST", f"{url}/v1/models/mlp:predict", {"instances": raw_x.tolist()})
    assert status == 200, body
    preds = body["predictions"]
    assert len(preds) == len(raw_x)
    np.testing.assert_allclose([p["probabilities"] for p in preds], expected["probabilities"], atol=1e-5)
    assert [p["class_ids"] for p in preds] == expected["class_ids"].tolist()
    # instances as objects keyed by input name, and through a version and a label
    rows = [{"features": r} for r in raw_x[:2].tolist()]
    for path in ("mlp", "mlp/versions/1", "mlp/labels/stable"):
        status, body = http("POST", f"{url}/v1/models/{path}:predict", {"instances": rows})
        assert status == 200 and [p["class_ids"] for p in body["predictions"]] == expected["class_ids"][:2].tolist()


def test_predict_columnar_format(url, raw_x, expected):
    for inputs in (raw_x.tolist(), {"features": raw_x.tolist()}):
        status, body = http("POST", f"{url}/v1/models/mlp:predict",
                            {"signature_name": "serving_default", "inputs": inputs})
        assert status == 200, body
        np.testing.assert_allclose(body["outputs"]["probabilities"], expected["probabilities"], atol=1e-5)
        assert body["outputs"]["class_ids"] == expected["class_ids"].tolist()


@pytest.mark.parametrize("body, fragment", [
    ('{"instances": [[1, 2, 3, 4]', "JSON Parse error"),
    ("[1, 2]", "JSON object"),
    ('{"rows": [[1, 2, 3, 4]]}', "Missing 'inputs' or 'instances'"),
    ('{"instances": [[1, 2, 3, 4]], "inputs": [[1, 2, 3, 4]]}', "Not both"),
    ('{"instances": []}', "non-empty"),
    ('{"instances": [[1, 2, 3]]}', "shape [1, 3]"),
    ('{"instances": [[[1, 2, 3, 4]]]}', "shape [1, 1, 4]"),
    ('{"instances": [[1, 2, 3, 4], [1, 2]]}', "rectangular"),
    ('{"instances": [["a", "b", "c", "d"]]}', "float"),
    ('{"instances": [{"pixels": [1, 2, 3, 4]}]}', "keys"),
    ('{"inputs": {"pixels": [[1, 2, 3, 4]]}}', "keys"),
    ('{"signature_name": "nope", "instances": [[1, 2, 3, 4]]}', 'Serving signature name: "nope"'),
])
def test_bad_requests_are_400_with_an_error(url, body, fragment):
    status, answer = http("POST", f"{url}/v1/models/mlp:predict", body)
    assert status == 400
    assert fragment in answer["error"]


def test_unknown_model_version_label_and_paths(url):
    row = {"instances": [[1, 2, 3, 4]]}
    assert http("POST", f"{url}/v1/models/nope:predict", row)[0] == 404
    assert http("POST", f"{url}/v1/models/mlp/versions/9:predict", row)[0] == 404
    assert http("POST", f"{url}/v1/models/mlp/labels/canary:predict", row)[0] == 404
    status, body = http("GET", f"{url}/v1/models/nope")
    assert status == 404 and "nope" in body["error"]
    assert http("GET", f"{url}/v1/models/mlp/versions/9")[0] == 404
    assert http("GET", f"{url}/v1/models/nope/metadata")[0] == 404
    assert http("GET", f"{url}/v1/models/mlp:predict")[0] == 400  # wrong method
    assert http("POST", f"{url}/v1/models/mlp:classify", row)[0] == 400
    assert http("GET", f"{url}/v1/models")[0] == 400  # no model name
    assert http("GET", f"{url}/elsewhere")[0] == 404


def test_oversized_body_is_413(url):
    status, body = http("POST", f"{url}/v1/models/mlp:predict", b"x" * (MAX_BODY + 100))
    assert status == 413 and "limit" in body["error"]
    # past the transport's own limit the request is refused before its body is read: a 413,
    # or (if the client is still sending when the server closes) a reset connection
    try:
        assert http("POST", f"{url}/v1/models/mlp:predict", b"x" * (3 * MAX_BODY))[0] == 413
    except (ConnectionError, urllib.error.URLError) as exc:
        assert "reset" in str(exc).lower() or "broken pipe" in str(exc).lower(), exc
    assert http("POST", f"{url}/v1/models/mlp:predict", {"instances": [[1, 2, 3, 4]]})[0] == 200


def test_broken_version_is_reported_and_others_serve(url):
    status, body = http("GET", f"{url}/v1/models/broken")
    assert status == 200
    (entry,) = body["model_version_status"]
    assert entry["state"] == "END" and entry["status"]["error_code"] != "OK" and entry["status"]["error_message"]
    assert http("POST", f"{url}/v1/models/broken:predict", {"instances": [[1, 2, 3, 4]]})[0] == 404
    assert http("POST", f"{url}/v1/models/mlp:predict", {"instances": [[1, 2, 3, 4]]})[0] == 200


def test_many_concurrent_requests(url, raw_x, expected):
    def one(i: int):
        rows = raw_x[i % len(raw_x): i % len(raw_x) + 1].tolist()
        status, body = http("POST", f"{url}/v1/models/mlp:predict", {"instances": rows})
        return i, status, body

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(one, range(96)))
    for i, status, body in results:
        assert status == 200, body
        assert body["predictions"][0]["class_ids"] == int(expected["class_ids"][i % len(raw_x)])
    assert http("GET", f"{url}/v1/models/mlp")[0] == 200


def test_new_version_is_picked_up_without_restart(setup, url, raw_x, expected):
    v2 = zexport.export_run(setup["run"], out=setup["root"])
    assert v2.name == "2"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, body = http("GET", f"{url}/v1/models/mlp/metadata")
        if body.get("model_spec", {}).get("version") == "2":
            break
        time.sleep(0.3)
    assert body["model_spec"]["version"] == "2"
    versions = [s["version"] for s in http("GET", f"{url}/v1/models/mlp")[1]["model_version_status"]]
    assert sorted(versions) == ["1", "2"]
    status, body = http("POST", f"{url}/v1/models/mlp/versions/2:predict", {"instances": raw_x[:3].tolist()})
    assert status == 200 and [p["class_ids"] for p in body["predictions"]] == expected["class_ids"][:3].tolist()


def test_graceful_shutdown_on_sigterm(setup, url):
    """Last: SIGTERM stops the server with status 0 (after the tests above)."""
    proc = setup["proc"]
    assert http("GET", f"{url}/v1/models/mlp")[0] == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/v1/models/mlp", timeout=5)


def test_serve_refuses_missing_root(tmp_path):
    from zoo.cli import main

    assert main(["serve", str(tmp_path / "none")]) == 2


def test_labels_file_and_version_discovery(tmp_path):
    from zoo.serve import Repository, ServingError, version_dirs

    (tmp_path / "m" / "3").mkdir(parents=True)
    (tmp_path / "m" / "3" / "saved_model.pb").write_bytes(b"")
    (tmp_path / "m" / ".4.tmp-1").mkdir()
    (tmp_path / "m" / "notes").mkdir()
    assert list(version_dirs(tmp_path / "m")) == [3]
    (tmp_path / "m" / "labels.json").write_text('{"prod": 3}')
    repo = Repository(tmp_path)
    repo.refresh()
    assert repo.labels == {"m": {"prod": 3}}
    assert repo.models["m"][3].state == "END"  # empty file: failed to load, reported
    with pytest.raises(ServingError) as err:
        repo.resolve("m", label="prod")
    assert err.value.status == 404


def test_repository_reloads_overwritten_and_repaired_versions(tmp_path):
    import keras

    from zoo.serve import Repository
    from zoo.spec import DataSpec

    spec = DataSpec(name="t", task="regression", input_shape=(2,), num_targets=1, preprocessing={"type": "none"})
    version = tmp_path / "m" / "1"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"half written")
    repo = Repository(tmp_path)
    repo.refresh()
    assert repo.models["m"][1].state == "END"
    first = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="output")])
    zexport.export_model(first, spec, "regression", name="m", version=1, out=tmp_path, overwrite=True)
    repo.refresh()
    servable = repo.resolve("m")
    assert servable.state == "AVAILABLE" and servable.version == 1
    x = np.ones((1, 2), "float32")
    np.testing.assert_allclose(servable.run("serving_default", {"features": x})["predictions"],
                               first.predict(x, verbose=0), atol=1e-5)
    second = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="output")])
    zexport.export_model(second, spec, "regression", name="m", version=1, out=tmp_path, overwrite=True)
    repo.refresh()
    assert repo.resolve("m") is not servable
    np.testing.assert_allclose(repo.resolve("m").run("serving_default", {"features": x})["predictions"],
                               second.predict(x, verbose=0), atol=1e-5)
