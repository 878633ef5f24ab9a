"""`zoo serve`: exported models over TensorFlow Serving's REST and gRPC APIs, with
tensorflow_model_server's own flags; and `zoo predict`, offline prediction from a
SavedModel.

    zoo serve saved_models                          # REST on 8501, gRPC on 8500
    zoo serve --model_name=mlp --model_base_path=/abs/saved_models/mlp --port=8500 --rest_api_port=8501
    zoo serve --model_config_file=models.config --model_config_file_poll_wait_seconds=60
    curl -d '{"instances": [[5.1, 3.5, 1.4, 0.2]]}' localhost:8501/v1/models/mlp:predict

`--port` is the gRPC port, as tensorflow_model_server's (it was the REST port
before gRPC came; REST is `--rest_api_port`). A port of 0 turns that protocol off,
as there; `any` takes a free port.

The pieces (each its own module): serve_repository (versions, policies, loading,
warm-up), serve_api (the one servable API both protocols call), serve_json and
serve_rest (REST), serve_proto and serve_grpc (gRPC), serve_batching,
serve_metrics, serve_status (codes and the error type).

TensorFlow is imported only inside functions: the CLI imports this module at
start-up to register `zoo serve` and `zoo predict`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.commands import command
from zoo.errors import ZooError
from zoo.serve_repository import LABELS_FILE, Policy, Repository, Servable, describe, version_dirs  # noqa: F401
from zoo.serve_status import Code, ServingError  # noqa: F401

DEFAULT_SIGNATURE = "serving_default"
MAX_BODY = 16 * 1024 * 1024
MAX_BATCH = 10_000
GRPC_PORT, REST_PORT = 8500, 8501
ANY_PORT = -1


@dataclass
class ServerOptions:
    """What `zoo serve` runs: models, ports and limits (the CLI flags, by name)."""

    root: str | None = None
    model_name: str = "default"
    model_base_path: str | None = None
    model_config_file: str | None = None
    model_config_file_poll_wait_seconds: float = 0
    host: str = "127.0.0.1"
    port: int = GRPC_PORT
    rest_api_port: int = REST_PORT
    version_policy: str = "latest"
    poll: float = 1.0
    threads: int = 8
    grpc_max_threads: int = 16
    max_body: int = MAX_BODY
    max_batch: int = MAX_BATCH
    max_inflight: int | None = None
    enable_batching: bool = False
    batching_parameters_file: str | None = None
    rest_api_timeout_in_ms: int = 0
    cors: bool = False
    enable_model_warmup: bool = True
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60_000_000
    connection_limit: int = 1000
    channel_timeout: int = 30


def build_repository(options: ServerOptions, warmup=None, on_load=None) -> tuple[Repository, Path, Callable | None]:
    """The repository the options name, the folder relative base paths are read from,
    and the config-file poller (None without a config file)."""
    common = {"poll_seconds": options.poll, "max_load_retries": options.max_num_load_retries,
              "retry_interval": max(0.0, options.load_retry_interval_micros / 1e6), "warmup": warmup,
              "on_load": on_load}
    if options.model_config_file:
        from zoo.serve_repository import config_sources, parse_model_config

        path = Path(options.model_config_file)
        config_dir = path.resolve().parent

        def read_config():
            try:
                text = path.read_text()
            except OSError as exc:
                raise ZooError(f"cannot read the model config {str(path)!r}: {exc.strerror}") from None
            try:
                return config_sources(parse_model_config(text), config_dir)
            except ServingError as exc:
                raise ZooError(f"{path}: {exc}") from None

        repository = Repository(sources=read_config(), **common)

        def poll_config():
            """Re-read the config file; a broken one is reported and the last good one kept."""
            try:
                sources = read_config()
            except ZooError as exc:
                print(f"zoo serve: {exc}; keeping the previous config", file=sys.stderr)
                return
            if sources != repository.sources():
                repository.set_sources(sources)

        return repository, config_dir, poll_config
    try:
        policy = Policy.parse(options.version_policy)
    except ValueError as exc:
        raise ZooError(str(exc)) from None
    if options.model_base_path:
        from zoo.serve_repository import ModelSource

        base = Path(options.model_base_path)
        if not base.is_dir():
            raise ZooError(f"--model_base_path {str(base)!r} not found")
        source = ModelSource(options.model_name, base, policy, {})
        return Repository(sources=[source], **common), Path.cwd(), None
    root = Path(options.root or "saved_models")
    if not root.is_dir():
        raise ZooError(f"model root {str(root)!r} not found; export a model first (zoo export RUN_DIR)")
    return Repository(root, policy=policy, **common), Path.cwd(), None


def check_ports(options: ServerOptions, port_given: bool) -> None:
    """Refuse a command line written for the first `zoo serve`, whose --port was REST's."""
    if options.port == 0 and options.rest_api_port == 0:
        raise ZooError("--port 0 and --rest_api_port 0 turn both gRPC and REST off; nothing to serve")
    if options.port == options.rest_api_port and options.port > 0:
        raise ZooError(f"--port {options.port} is also the REST port: --port is now the gRPC port (as "
                       f"tensorflow_model_server's; it used to be REST's). Give REST as --rest_api_port "
                       f"{options.port} and gRPC another --port (default {GRPC_PORT}; 0: no gRPC)")
    if port_given and options.port == REST_PORT:
        print(f"zoo serve: note: --port {REST_PORT} is the gRPC port now; REST is on --rest_api_port "
              f"{options.rest_api_port}", file=sys.stderr)


def serve(options: ServerOptions, on_ready: Callable[[dict[str, str]], None] | None = None) -> int:
    """Serve until SIGINT or SIGTERM, then finish the requests in flight (up to 5 s)."""
    from zoo.serve_api import ServingAPI
    from zoo.serve_metrics import Metrics

    metrics = Metrics()
    api_holder: list = []
    repository, config_dir, poll_config = build_repository(
        options, warmup=(lambda s: api_holder[0].warmup(s)) if options.enable_model_warmup else None,
        on_load=metrics.load)
    batcher = _batcher(options, metrics)
    api = ServingAPI(repository, batcher=batcher, metrics=metrics, max_batch=options.max_batch,
                     timeout=options.rest_api_timeout_in_ms / 1000 or None)
    api_holder.append(api)
    repository.refresh()
    extra = [(options.model_config_file_poll_wait_seconds, poll_config)] if (
        poll_config and options.model_config_file_poll_wait_seconds > 0) else []
    repository.start(extra)
    rest, decoder, grpc_server, endpoints = None, None, None, {}
    try:
        if options.rest_api_port:
            rest, decoder = _rest_server(api, metrics, options)
            endpoints["rest"] = f"http://{options.host}:{rest.effective_port}"
        if options.port:
            grpc_server = _grpc_server(api, options, config_dir)
            endpoints["grpc"] = f"{options.host}:{grpc_server[1]}"
            grpc_server[0].start()
        _banner(repository, options, endpoints)
        if on_ready:
            on_ready(endpoints)
        _run_until_signal(rest)
    finally:
        if rest is not None:
            rest.close()
        if decoder is not None:
            decoder.stop()
        if grpc_server is not None:
            grpc_server[0].stop(grace=5).wait(6)
        repository.stop()
        if batcher is not None:
            batcher.stop()
    print("zoo serve: stopped", flush=True)
    return 0


def _batcher(options: ServerOptions, metrics):
    if not options.enable_batching:
        if options.batching_parameters_file:
            raise ZooError("--batching_parameters_file is set without --enable_batching")
        return None
    from zoo.serve_batching import Batcher, BatchingOptions

    try:
        return Batcher(BatchingOptions.read(options.batching_parameters_file), on_batch=metrics.batch)
    except ValueError as exc:
        raise ZooError(str(exc)) from None


def _port(port: int) -> int:
    return 0 if port == ANY_PORT else port


def _rest_server(api, metrics, options: ServerOptions):
    """The waitress server and the large-body decoder process (None when --max-body is small)."""
    from zoo.serve_rest import LARGE_BODY, Decoder, RestApp, create_server

    app = RestApp(api, max_body=options.max_body, max_inflight=options.max_inflight, cors=options.cors,
                  metrics_page=metrics.page)
    try:
        server = create_server(app, options.host, _port(options.rest_api_port), threads=options.threads,
                               connection_limit=options.connection_limit, channel_timeout=options.channel_timeout)
    except OSError as exc:
        raise ZooError(f"cannot listen for REST on {options.host}:{options.rest_api_port}: {exc.strerror}") from None
    app.decoder = Decoder() if options.max_body > LARGE_BODY else None
    return server, app.decoder


def _grpc_server(api, options: ServerOptions, config_dir: Path):
    from zoo.serve_grpc import create_server

    address = f"{options.host}:{_port(options.port)}"
    try:
        return create_server(api, address, threads=options.grpc_max_threads, max_message=options.max_body,
                             max_concurrent_rpcs=max(options.connection_limit, options.grpc_max_threads),
                             config_dir=config_dir)
    except (ServingError, RuntimeError) as exc:
        raise ZooError(f"cannot listen for gRPC on {address} (in use?): {exc}") from None


def _banner(repository: Repository, options: ServerOptions, endpoints: dict[str, str]) -> None:
    for line in describe(repository):
        print(line, flush=True)
    if "grpc" in endpoints:
        print(f"gRPC API on {endpoints['grpc']}", flush=True)
    if "rest" in endpoints:
        print(f"REST API on {endpoints['rest']}", flush=True)
    what = options.model_config_file or options.model_base_path or options.root or "saved_models"
    print(f"serving {what} on {endpoints.get('rest') or endpoints.get('grpc')}", flush=True)


def _run_until_signal(rest) -> None:
    """Block until SIGINT/SIGTERM (waitress's loop when REST is on)."""
    stopped = threading.Event()

    def stop(signum, frame):
        stopped.set()
        raise KeyboardInterrupt

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop) if main else None
    try:
        if rest is not None:
            rest.run()  # returns on KeyboardInterrupt after letting running requests finish
        else:
            stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


# --- the command line -------------------------------------------------------------------------


def _flag_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _flag_port(text: str) -> int:
    if text.strip().lower() == "any":
        return ANY_PORT
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a port number, 0 (off) or 'any', not {text!r}") from None
    if not 0 <= port < 65536:
        raise argparse.ArgumentTypeError(f"port {port} is out of range")
    return port


def _serve_args(p: argparse.ArgumentParser) -> None:
    d = ServerOptions()
    p.add_argument("root", nargs="?", help="export root: one model per folder (default: saved_models/)")
    tf = p.add_argument_group("tensorflow_model_server's flags")
    tf.add_argument("--port", type=_flag_port, default=None,
                    help=f"gRPC port (default {d.port}; 0: no gRPC; 'any': a free one). Before gRPC this was "
                         "the REST port: REST is --rest_api_port")
    tf.add_argument("--rest_api_port", type=_flag_port, default=d.rest_api_port,
                    help=f"REST port (default {d.rest_api_port}; 0: no REST; 'any': a free one)")
    tf.add_argument("--model_name", default=d.model_name, help="with --model_base_path: the model's name")
    tf.add_argument("--model_base_path", help="one model's folder of versions (instead of ROOT)")
    tf.add_argument("--model_config_file", help="TensorFlow Serving's ModelServerConfig in text format")
    tf.add_argument("--model_config_file_poll_wait_seconds", type=float, default=0,
                    help="re-read the config file this often (default 0: never)")
    tf.add_argument("--file_system_poll_wait_seconds", "--poll", dest="poll", type=float, default=d.poll,
                    help=f"seconds between scans for new versions (default {d.poll:g})")
    tf.add_argument("--enable_batching", type=_flag_bool, nargs="?", const=True, default=False,
                    help="merge concurrent requests into one signature call")
    tf.add_argument("--batching_parameters_file", help="BatchingParameters in text format")
    tf.add_argument("--rest_api_timeout_in_ms", type=int, default=0,
                    help="longest wait for the model, in ms (default 0: none; gRPC uses the call's deadline)")
    tf.add_argument("--rest_api_num_threads", "--threads", dest="threads", type=int, default=d.threads,
                    help=f"REST request threads (default {d.threads})")
    tf.add_argument("--grpc_max_threads", type=int, default=d.grpc_max_threads,
                    help=f"gRPC request threads (default {d.grpc_max_threads})")
    tf.add_argument("--rest_api_enable_cors_support", "--cors", dest="cors", type=_flag_bool, nargs="?",
                    const=True, default=False, help="CORS headers on every REST answer")
    tf.add_argument("--enable_model_warmup", type=_flag_bool, nargs="?", const=True, default=True,
                    help="replay assets.extra/tf_serving_warmup_requests before serving a version (default true)")
    tf.add_argument("--max_num_load_retries", type=int, default=d.max_num_load_retries,
                    help=f"retries of a failed load (default {d.max_num_load_retries})")
    tf.add_argument("--load_retry_interval_micros", type=int, default=d.load_retry_interval_micros,
                    help="wait between load retries (default 60 s); a version's files changing retries at once")
    zoo = p.add_argument_group("zoo's own")
    zoo.add_argument("--host", default=d.host, help=f"address to bind (default {d.host}, this machine only)")
    zoo.add_argument("--version-policy", default=d.version_policy,
                     help="without a config file: latest (TensorFlow Serving's default), latest:N or all")
    zoo.add_argument("--max-body", type=int, default=d.max_body, help=f"largest request in bytes (default {MAX_BODY})")
    zoo.add_argument("--max-batch", type=int, default=d.max_batch,
                     help=f"most examples in one request (default {MAX_BATCH}; 413 past it)")
    zoo.add_argument("--max-inflight", type=int, help="bytes of request bodies decoded at once (default 2x "
                                                      "--max-body; 429 past it)")
    zoo.add_argument("--connection-limit", type=int, default=d.connection_limit,
                     help=f"open REST connections (default {d.connection_limit})")
    zoo.add_argument("--channel-timeout", type=int, default=d.channel_timeout,
                     help=f"seconds before an idle REST connection is closed (default {d.channel_timeout})")


@command("serve", _serve_args)
def cmd_serve(args: argparse.Namespace) -> int:
    """Serve exported models with TensorFlow Serving's REST and gRPC APIs."""
    options = ServerOptions(**{k: v for k, v in vars(args).items() if k in ServerOptions.__dataclass_fields__
                               and v is not None})
    check_ports(options, port_given=args.port is not None)
    return serve(options)


# --- offline prediction ------------------------------------------------------------------------

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def resolve_saved_model(path: str | os.PathLike) -> Path:
    """A version folder, or a model folder (its highest version)."""
    p = Path(path)
    if (p / "saved_model.pb").is_file():
        return p
    versions = version_dirs(p)
    if not versions:
        raise ZooError(f"{str(p)!r} holds no SavedModel: give saved_models/NAME or saved_models/NAME/VERSION")
    return versions[max(versions)]


def image_files(path: str | os.PathLike) -> list[Path] | None:
    """The image files `zoo predict` reads from `path` (one image or a folder), in
    order; None when `path` is not images."""
    p = Path(path)
    if not (p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES):
        return None
    files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) if p.is_dir() else [p]
    if not files:
        raise ZooError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {str(p)!r}")
    return files


def read_inputs(path: str | os.PathLike, spec) -> np.ndarray:
    """Raw inputs from a CSV (numbers; an optional header), NPY/NPZ array, an
    image, or a folder of images, shaped for the signature input `spec`."""
    p = Path(path)
    shape = spec.shape.as_list()[1:]
    if not p.exists():
        raise ZooError(f"input {str(p)!r} not found")
    files = image_files(p)
    if files is not None:
        return np.stack([_read_image(f, shape) for f in files])
    try:
        if p.suffix.lower() == ".npy":
            x = np.load(p, allow_pickle=False)
        elif p.suffix.lower() == ".npz":
            with np.load(p, allow_pickle=False) as z:
                x = z["x"] if "x" in z.files else z[z.files[0]]
        elif p.suffix.lower() in (".csv", ".txt"):
            x = _read_csv(p)
        else:
            raise ZooError(f"cannot read {p.name!r}: use .csv, .npy, .npz or an image ({', '.join(IMAGE_SUFFIXES)})")
    except (OSError, ValueError) as exc:
        raise ZooError(f"cannot read {str(p)!r}: {exc}") from None
    x = np.asarray(x)
    if list(x.shape[1:]) != shape:
        if x.ndim >= 1 and int(np.prod(x.shape[1:] or (1,))) == int(np.prod(shape)) and None not in shape:
            x = x.reshape((len(x), *shape))
        elif list(x.shape) == shape:
            x = x[None]
        else:
            raise ZooError(f"{p.name}: examples of shape {list(x.shape[1:])}, the model takes {shape}")
    return x


def _read_csv(p: Path) -> np.ndarray:
    import csv

    with open(p, newline="") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if rows and not _numeric(rows[0]):
        rows = rows[1:]  # a header
    try:
        return np.asarray([[float(c) for c in r] for r in rows], dtype="float64")  # float32 after the range check
    except ValueError as exc:
        raise ValueError(f"non-numeric value ({exc}); the CSV must hold only the model's input columns") from None


def _numeric(row: list[str]) -> bool:
    try:
        [float(c) for c in row]
    except ValueError:
        return False
    return True


def _read_image(path: Path, shape: list) -> np.ndarray:
    from PIL import Image

    if len(shape) != 3:
        raise ZooError(f"the model takes inputs of shape {shape}, not images")
    height, width, channels = shape
    try:
        img = Image.open(path).convert("L" if channels == 1 else "RGB")
    except OSError as exc:
        raise ZooError(f"cannot read image {str(path)!r}: {exc}") from None
    if height and width and img.size != (width, height):
        img = img.resize((width, height), Image.BILINEAR)
    x = np.asarray(img, dtype="float32")
    return x[..., None] if channels == 1 else x


def predict_file(saved_model: str | os.PathLike, input_path: str | os.PathLike, *, batch_size: int = 256,
                 signature: str = DEFAULT_SIGNATURE, allow_nan: bool = False) -> list[dict[str, Any]]:
    """One dict of named outputs per input example (plus class_name when the
    export's metadata names the classes)."""
    path = resolve_saved_model(saved_model)
    servable = Servable(path.parent.name, int(path.name) if path.name.isdigit() else 0, path).load()
    if servable.state != "AVAILABLE":
        raise ZooError(f"cannot load {path}: {servable.error}")
    if signature not in servable.signatures:
        raise ZooError(f"{path} has no signature {signature!r}; it has {', '.join(servable.signatures)}")
    sig = servable.signatures[signature]
    if len(sig.inputs) != 1:
        raise ZooError(f"signature {signature!r} takes {len(sig.inputs)} inputs; zoo predict reads one")
    (name, spec), = sig.fn.structured_input_signature[1].items()
    x = read_inputs(input_path, spec)
    if not allow_nan:
        from zoo.data.checks import check_inputs

        check_inputs(x, str(input_path))
    if x.dtype == np.float64:
        x = x.astype(spec.dtype.as_numpy_dtype)
    files = image_files(input_path)
    if files is not None:
        for line in image_warnings(x, servable.metadata.get("preprocessing") or {}):
            print(f"warning: {line}", file=sys.stderr)
    class_names = servable.metadata.get("class_names")
    rows: list[dict[str, Any]] = []
    for start in range(0, len(x), max(1, batch_size)):
        rows.extend(_predict_rows(servable, sig, {name: x[start:start + batch_size]}))
    for i, item in enumerate(rows):
        if class_names and isinstance(item.get("class_ids"), int) and 0 <= item["class_ids"] < len(class_names):
            item["class_name"] = class_names[item["class_ids"]]
        item["input"] = files[i].name if files is not None else i  # which file (or row) this answer is for
    return rows


def image_warnings(x: np.ndarray, preprocessing: dict[str, Any]) -> list[str]:
    """What looks unlike the training images: values scaled to [0, 1] where the
    model takes 0-255 pixels, or the opposite polarity (dark on light where the
    training images were light on dark, as MNIST's are, or the reverse)."""
    raw_max, raw_mean = preprocessing.get("raw_max"), preprocessing.get("raw_mean")
    if not raw_max or raw_mean is None or not len(x):
        return []
    out = []
    if float(np.max(x)) > 1.5 * raw_max:
        out.append(f"the images' pixels go up to {float(np.max(x)):g}, but the model was trained on pixels up to "
                   f"{raw_max:g}: scale them to that range (x * {raw_max:g} / {float(np.max(x)):g})")
        return out
    if raw_max > 1.5 and float(np.max(x)) <= 1.0:
        out.append(f"the images' pixels are all in [0, 1], but the model was trained on pixels up to {raw_max:g}: "
                   f"give it the images' raw values (e.g. 0-255), it rescales them itself")
        return out
    trained, given = raw_mean / raw_max, float(np.mean(x, dtype="float64")) / raw_max
    if (trained < 0.5) != (given < 0.5) and abs(trained - given) > 0.25:
        look = "light on a dark background" if trained < 0.5 else "dark on a light background"
        out.append(f"the images look inverted compared with the training images (mean pixel {given:.0%} of the "
                   f"maximum here, {trained:.0%} in training: the model learned {look}); invert them "
                   f"({raw_max:g} - x) if that is what they are")
    return out


def _predict_rows(servable: Servable, sig, arrays: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The server's row-format answer as plain Python values, one dict per example."""
    import orjson

    from zoo import serve_json
    from zoo.serve_api import _check_shape

    try:
        for name, info in sig.inputs.items():
            if info.dtype.kind in "biuf" and arrays[name].dtype.kind not in "biuf":
                raise ServingError(Code.INVALID_ARGUMENT, f"input {name!r} expects {info.tf_name} values")
            arrays[name] = np.asarray(arrays[name]).astype(info.dtype, copy=False)
            _check_shape(arrays[name], name, info)
    except ServingError as exc:
        raise ZooError(str(exc)) from None
    outputs = servable.run(sig.name, arrays)
    rows = orjson.loads(serve_json.dumps(serve_json.format_predict(outputs, "row")))["predictions"]
    return [row if isinstance(row, dict) else {next(iter(outputs)): row} for row in rows]


def _predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("saved_model", help="saved_models/NAME/VERSION (or saved_models/NAME: its highest version), or a "
                                       "preset (MODEL.PRESET, e.g. lenet5.mnist)")
    p.add_argument("--input", "-i", required=True, help="CSV, .npy/.npz, an image, or a folder of images")
    p.add_argument("--output", "-o", help="write JSON lines here (default: stdout)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--signature", default=DEFAULT_SIGNATURE)
    p.add_argument("--allow-nan", action="store_true", help="predict on NaN or infinite inputs instead of refusing")


@command("predict", _predict_args)
def cmd_predict(args: argparse.Namespace) -> int:
    """Predict offline from an exported SavedModel (or a preset, MODEL.PRESET): one JSON line per example."""
    from zoo import presets

    saved_model = presets.exported(args.saved_model) if presets.split_name(args.saved_model) else args.saved_model
    rows = predict_file(saved_model, args.input, batch_size=args.batch_size, signature=args.signature,
                        allow_nan=args.allow_nan)
    lines = "".join(json.dumps(r) + "\n" for r in rows)
    if args.output:
        Path(args.output).write_text(lines)
        print(f"{len(rows)} predictions written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(lines)
    return 0
