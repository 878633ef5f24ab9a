"""TensorFlow Serving's REST API over the servable API, as a WSGI application run
by waitress.

    GET  /v1/models/NAME[/versions/N | /labels/L]             version status
    GET  /v1/models/NAME[/versions/N | /labels/L]/metadata    signatures
    POST /v1/models/NAME[/versions/N | /labels/L]:predict     {"instances"|"inputs": ...}
    POST /v1/models/NAME[/versions/N | /labels/L]:classify    {"examples": [...], "context": {...}}
    POST /v1/models/NAME[/versions/N | /labels/L]:regress     (the same)
    GET  /monitoring/prometheus/metrics                      Prometheus text format
    OPTIONS any path                                         CORS preflight (headers with --cors)

Paths are matched with TensorFlow Serving's own patterns (http_rest_api_util.cc),
so `/versions/-1` is a malformed request (400), not an unknown version. Every
answer is JSON, errors `{"error": message}` with TensorFlow Serving's status
codes, including those waitress itself gives (bodies past its limit, bad chunked
encoding, header floods), through a JSON error task.

Against slow or hostile clients: waitress reads each request completely before a
request thread sees it, up to `connection_limit` connections, closing those idle
for `channel_timeout` seconds; bodies over `max_body` are refused (413) before
they are read; at most `max_inflight` bytes of bodies are decoded at once (429
past it), and the servable API bounds the examples per request.
"""

from __future__ import annotations

import http
import multiprocessing
import re
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from zoo import serve_json
from zoo.serve_api import ModelSpec, ServingAPI
from zoo.serve_metrics import PATH as METRICS_PATH
from zoo.serve_status import Code, ServingError, short

_VERSION = r"(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
PREDICT = re.compile(rf"/v1/models/([^/:]+){_VERSION}:(classify|regress|predict)", re.I)
STATUS = re.compile(rf"/v1/models(?:/([^/:]+))?{_VERSION}(?:/(metadata))?", re.I)
#: predict bodies larger than this are decoded in the decoder process
LARGE_BODY = 1 << 20
CORS_HEADERS = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Methods", "POST, GET"),
                ("Access-Control-Allow-Headers", "Content-Type")]
_ORIGIN = re.compile(r"https?://")


class RestApp:
    """The WSGI application (see the module docstring)."""

    def __init__(self, api: ServingAPI, *, max_body: int, max_inflight: int | None = None, cors: bool = False,
                 metrics_page: Callable[[], bytes] | None = None, decoder: "Decoder | None" = None) -> None:
        self.api = api
        self.decoder = decoder
        self.max_body = max_body
        self.max_inflight = max_inflight or 2 * max_body
        self.cors = cors
        self.metrics_page = metrics_page
        self._inflight = 0
        self._inflight_lock = threading.Lock()

    def __call__(self, environ, start_response):
        method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        content_type = "application/json"
        try:
            status, body = 200, self.dispatch(environ, method, path)
            if isinstance(body, bytes):  # the metrics page
                content_type = "text/plain; version=0.0.4; charset=utf-8"
            else:
                body = serve_json.dumps(body)
        except ServingError as exc:
            status, body = exc.http_status, serve_json.dumps({"error": str(exc)})
        except RecursionError:
            status, body = 400, serve_json.dumps({"error": "the request is nested too deeply"})
        except Exception as exc:  # a bug or a model failure: answer, stay up
            status, body = 500, serve_json.dumps({"error": f"{type(exc).__name__}: {short(exc)}"})
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        if self.cors:
            headers += CORS_HEADERS
        start_response(f"{status} {_phrase(status)}", headers)
        return [body]

    def dispatch(self, environ, method: str, path: str) -> Any:
        if method == "OPTIONS":
            if not _ORIGIN.match(environ.get("HTTP_ORIGIN", "")):
                raise ServingError(Code.FAILED_PRECONDITION, "Origin header is missing in CORS preflight")
            return {}
        if method == "GET" and path == METRICS_PATH and self.metrics_page is not None:
            return self.metrics_page()
        if not path.lower().startswith("/v1/"):
            raise ServingError(Code.NOT_FOUND, f"no such endpoint: {method} {path}; see /v1/models/NAME")
        malformed = ServingError(Code.INVALID_ARGUMENT, f"Malformed request: {method} {path}")
        if method == "POST" and (m := PREDICT.fullmatch(path)):
            verb = m[4].lower()
            with self.api.observe("REST", verb, m[1]) as call:
                spec = ModelSpec(m[1], _version(m[2]), m[3])
                return getattr(self, verb)(spec, self._body(environ), call)
        if method == "GET" and (m := STATUS.fullmatch(path)):
            if not m[1]:
                raise ServingError(Code.INVALID_ARGUMENT, "Missing model name in request.")
            version, label = _version(m[2]), m[3]
            if m[4]:
                return self.metadata(ModelSpec(m[1], version, label))
            return {"model_version_status": [s.status() for s in self.api.status(m[1], version, label)]}
        raise malformed

    # -- the verbs

    def predict(self, spec: ModelSpec, body: bytes, call: dict) -> dict[str, Any]:
        servable = self.api.servable(spec)
        call["version"] = str(servable.version)
        inputs = {name: sig.inputs for name, sig in servable.signatures.items()}
        decode = self.decoder if self.decoder is not None and len(body) > LARGE_BODY else serve_json.decode_predict
        name, arrays, fmt = decode(body, inputs, self.api.max_batch)
        del body
        outputs = self.api.run(servable, servable.signatures[name], arrays, call=call)
        return serve_json.format_predict(outputs, fmt)

    def classify(self, spec: ModelSpec, body: bytes, call: dict) -> dict[str, Any]:
        doc = serve_json.loads(body)
        spec = ModelSpec(spec.name, spec.version, spec.label, serve_json.signature_name(doc))
        result = self.api.classify(spec, serve_json.parse_examples(doc, "classify"), call=call)
        return serve_json.format_classify(result.outputs.get("classes"), result.outputs.get("scores"))

    def regress(self, spec: ModelSpec, body: bytes, call: dict) -> dict[str, Any]:
        doc = serve_json.loads(body)
        spec = ModelSpec(spec.name, spec.version, spec.label, serve_json.signature_name(doc))
        result = self.api.regress(spec, serve_json.parse_examples(doc, "regress"), call=call)
        return serve_json.format_regress(result.outputs["outputs"])

    def metadata(self, spec: ModelSpec) -> dict[str, Any]:
        from google.protobuf.json_format import MessageToDict

        servable = self.api.servable(spec)
        return {"model_spec": {"name": servable.name, "signature_name": "", "version": str(servable.version)},
                "metadata": {"signature_def": _to_dict(MessageToDict, servable.signature_def_map)}}

    # -- the body, within the size and in-flight limits

    def _body(self, environ) -> bytes:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise ServingError(Code.INVALID_ARGUMENT, "Content-Length is not a number") from None
        if length > self.max_body:
            raise ServingError(Code.RESOURCE_EXHAUSTED, f"request body of {length} bytes is over the "
                                                        f"{self.max_body}-byte limit (--max-body)", http=413)
        with self._inflight_lock:
            if length > LARGE_BODY and self._inflight and self._inflight + length > self.max_inflight:
                raise ServingError(Code.RESOURCE_EXHAUSTED, f"the server is decoding {self._inflight} bytes of "
                                                            f"requests (limit {self.max_inflight}); retry shortly")
            self._inflight += length
        environ["zoo.inflight"] = length
        return environ["wsgi.input"].read(length) if length else b""

    def release(self, environ) -> None:
        with self._inflight_lock:
            self._inflight -= environ.pop("zoo.inflight", 0)


class Decoder:
    """Decodes large predict bodies in a process of its own: parsing a 16 MB body holds
    the GIL for a second or more, which would stall every other request of the server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = self._start()

    @staticmethod
    def _start() -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        pool.submit(int).result()  # started now, not on the first large request
        return pool

    def __call__(self, *args):
        try:
            return self._pool.submit(serve_json.decode_predict, *args).result()
        except BrokenProcessPool:  # e.g. killed for memory: answer, start a new one
            with self._lock:
                self._pool = self._start()
            raise ServingError(Code.UNAVAILABLE, "the request decoder stopped (out of memory?); retry") from None

    def stop(self) -> None:
        self._pool.shutdown(cancel_futures=True)


class _Released:
    """Wraps the app so the in-flight budget is given back however a request ends."""

    def __init__(self, app: RestApp) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        try:
            return self.app(environ, start_response)
        finally:
            self.app.release(environ)


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    if len(text) > 19 or int(text) >= 2**63:
        raise ServingError(Code.INVALID_ARGUMENT, f"Failed to convert version: {text[:40]} to numeric.")
    return int(text)


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Client Closed Request" if status == 499 else "Error"


def _to_dict(to_dict, message) -> dict[str, Any]:
    try:
        return to_dict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    except TypeError:  # protobuf < 5.26
        return to_dict(message, preserving_proto_field_name=True, including_default_value_fields=True)


# --- the waitress server ------------------------------------------------------------------


def _json_error_channel():
    """waitress's HTTP channel whose own errors (413, 400 bad chunk, 431 ...) are JSON."""
    from waitress.channel import HTTPChannel
    from waitress.task import ErrorTask

    class JsonErrorTask(ErrorTask):
        def execute(self):
            error = self.request.error
            body = serve_json.dumps({"error": f"{error.reason}: {error.body}"})
            self.status = f"{error.code} {error.reason}"
            self.response_headers.append(("Content-Type", "application/json"))
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    class JsonErrorChannel(HTTPChannel):
        error_task_class = JsonErrorTask

    return JsonErrorChannel


def create_server(app: RestApp, host: str, port: int, *, threads: int, connection_limit: int,
                  channel_timeout: int):
    """A waitress server for the app (port 0: any free port)."""
    import waitress

    server = waitress.create_server(
        _Released(app), host=host, port=port, threads=threads, ident="zoo-serve",
        # waitress refuses bodies past twice the limit before reading them; below that the app answers 413
        max_request_body_size=2 * app.max_body, clear_untrusted_proxy_headers=True,
        connection_limit=connection_limit, channel_timeout=channel_timeout, cleanup_interval=max(1, channel_timeout // 2),
        asyncore_use_poll=True)  # poll(): more than 1024 connections
    server.channel_class = _json_error_channel()
    return server
