"""TensorFlow Serving's REST JSON, as tensorflow_serving/util/json_tensor.cc reads
and writes it: the row ("instances") and columnar ("inputs") predict formats,
classify/regress examples, and the answers.

Types are strict as there: an int32 input takes JSON integers within int32's
range, a float input numbers but not true/false, a bool input true/false only,
a string input strings or {"b64": ...}; anything else is INVALID_ARGUMENT with
TensorFlow Serving's message ("JSON Value: ... is not of expected type: ...").
Beyond it, float inputs must be finite (NaN, Infinity and numbers past the
dtype's range are refused by the servable API: a model's answer to them is
meaningless), and answers are strict JSON: floats in their shortest round-trip form (float32 as float32),
a non-finite output value as null, outputs named `*_bytes` as {"b64": ...}.

Parsing uses orjson (fast, bounded nesting); a body it refuses is read again by
the standard library only to name what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import orjson

from zoo.serve_api import DEFAULT_SIGNATURE, find_signature
from zoo.serve_repository import TensorInfo
from zoo.serve_status import Code, ServingError, batch_limit, short

SIGNATURE_KEY = "signature_name"
_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_INT_KINDS = "iu"


def bad(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)


# --- parsing ----------------------------------------------------------------------


def loads(body: bytes) -> dict[str, Any]:
    """The request's JSON object, or INVALID_ARGUMENT naming the parse error."""
    if not body or not body.strip():
        raise bad("JSON Parse error: The document is empty")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        doc = _loads_for_message(body, exc)
    if not isinstance(doc, dict):
        raise bad(f"JSON Value: {debug(doc)} Is not object")
    return doc


def _loads_for_message(body: bytes, error: Exception) -> Any:
    """The standard library's reading of a body orjson refused: it accepts NaN and
    Infinity tokens and any integer, so the type checks can name the value."""
    try:
        return json.loads(body.decode("utf-8"))  # UTF-8 only, as rapidjson reads it (no UTF-16 guessing)
    except (ValueError, RecursionError):
        raise bad(f"JSON Parse error: {short(error)}") from None


def debug(value: Any, limit: int = 256) -> str:
    """A JSON value for an error message, cut at `limit` characters (as JsonValueToDebugString)."""
    try:
        text = orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        text = json.dumps(value, default=str)
    return text[:limit]


def json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    return {dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


def signature_name(doc: Mapping[str, Any]) -> str:
    name = doc.get(SIGNATURE_KEY, "")
    if not isinstance(name, str):
        raise bad(f"JSON Value: {debug(doc)} not formatted correctly. 'signature_name' key must be a string value.")
    return name


def is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def decode_predict(body: bytes, signatures: Mapping[str, Mapping[str, TensorInfo]],
                   max_batch: int = 0) -> tuple[str, dict[str, np.ndarray], str]:
    """A predict body as (signature name, arrays per input, 'row' or 'columnar');
    `signatures` maps each signature name to its inputs. A plain function of bytes,
    so large bodies can be decoded in another process (serve_rest)."""
    doc = loads(body)
    name = signature_name(doc) or DEFAULT_SIGNATURE
    inputs = find_signature(signatures, name)
    arrays, fmt = parse_predict(doc, inputs, b"true" in body or b"false" in body, max_batch)
    return name, arrays, fmt


def parse_predict(doc: Mapping[str, Any], inputs: Mapping[str, TensorInfo], has_bools: bool = True,
                  max_batch: int = 0) -> tuple[dict[str, np.ndarray], str]:
    """Arrays for each signature input and the format ('row' or 'columnar').
    `has_bools` False (the body has no true/false token) skips the bool scan;
    `max_batch` refuses too many examples before any is converted."""
    rows, cols = doc.get("instances"), doc.get("inputs")
    if "instances" in doc and "inputs" in doc:
        raise bad(f"JSON Value: {debug(doc)} Not formatted correctly expecting only one of 'inputs' or "
                  "'instances' keys to exist ")
    if "instances" in doc:
        if isinstance(rows, list):
            batch_limit(len(rows), max_batch)
        return _rows(rows, doc, inputs, has_bools), "row"
    if "inputs" in doc:
        for value in (cols.values() if isinstance(cols, dict) and not is_b64(cols) else [cols]):
            batch_limit(len(value) if isinstance(value, list) else 1, max_batch)
        return _columns(cols, inputs, has_bools), "columnar"
    raise bad("Missing 'inputs' or 'instances' key")


def _rows(rows: Any, doc, inputs: Mapping[str, TensorInfo], has_bools: bool) -> dict[str, np.ndarray]:
    if not isinstance(rows, list):
        raise bad(f"JSON Value: {debug(doc)} Expecting 'instances' to be an list/array")
    if not rows:
        raise bad(f"JSON Value: {debug(doc)} No values in 'instances' array")
    objects = isinstance(rows[0], dict) and not is_b64(rows[0])
    if not isinstance(rows[0], dict) and len(inputs) > 1:
        raise bad("instances is a plain list, but expecting list of objects as multiple input tensors required "
                  "as per tensorinfo_map")
    names = sorted(inputs)
    for i, row in enumerate(rows):
        is_object = isinstance(row, dict) and not is_b64(row)
        if objects and not is_object:
            raise bad(f"Expecting object but got list at item {i} of input list")
        if not objects and is_object:
            raise bad(f"Expecting value/list but got object at item {i} of input list")
        if objects and sorted(row) != names:
            raise bad(f"Failed to process element: {i} of 'instances' list. JSON object: {debug(row)} keys must "
                      f"be equal to: {','.join(names)}")
    columns = {n: [r[n] for r in rows] for n in names} if objects else {names[0]: rows}
    arrays = {}
    for name in names:
        try:
            arrays[name] = to_array(columns[name], name, inputs[name], has_bools)
        except _ValueError as exc:
            where = f"{exc.index} key: {name}" if objects else str(exc.index)
            raise bad(f"Failed to process element: {where} of 'instances' list. Error: INVALID_ARGUMENT: {exc}") from None
    if len({a.shape[0] for a in arrays.values()}) > 1:
        raise bad("instances have inputs of different batch sizes")
    return arrays


def _columns(value: Any, inputs: Mapping[str, TensorInfo], has_bools: bool) -> dict[str, np.ndarray]:
    if not isinstance(value, dict) or is_b64(value):
        if len(inputs) > 1:
            raise bad("inputs is a plain value/list, but expecting an object as multiple input tensors required as "
                      "per tensorinfo_map")
        value = {next(iter(inputs)): value}
    arrays = {}
    for name, info in sorted(inputs.items()):
        if name not in value:
            raise bad(f"Missing named input: {name} in 'inputs' object.")
        try:
            arrays[name] = to_array(value[name], name, info, has_bools)
        except _ValueError as exc:
            raise bad(str(exc)) from None
    return arrays


class _ValueError(Exception):
    """A leaf value of the wrong type, at instance `index` of the batch."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


def to_array(value: Any, name: str, info: TensorInfo, has_bools: bool = True) -> np.ndarray:
    """A JSON value as an array of the input's dtype, its values checked as
    TensorFlow Serving checks them (shapes and finiteness: ServingAPI.validate)."""
    if info.dtype == object:
        arr = _string_array(value, info)
    else:
        try:
            arr = np.asarray(value)
        except (ValueError, RecursionError) as exc:
            raise bad(f"input {name!r}: values must form a rectangular array: {short(exc, 200)}") from None
        if arr.size == 0 and arr.dtype.kind in "fiub":
            arr = np.empty(arr.shape, info.dtype)
        elif not _kind_ok(arr, info.dtype) or (has_bools and info.dtype.kind != "b" and arr.dtype.kind != "b"
                                                and _first_bool(value) is not None):
            raise _type_error(value, info)
        arr = _cast(arr, info)
    return arr


def _kind_ok(arr: np.ndarray, dtype: np.dtype) -> bool:
    kind = arr.dtype.kind
    if dtype.kind == "b":
        return kind == "b"
    if dtype.kind in _INT_KINDS:
        if kind not in _INT_KINDS:
            return False
        info = np.iinfo(dtype)
        return not arr.size or (int(arr.min()) >= info.min and int(arr.max()) <= info.max)
    return kind in "fiu"  # float and double take any number, not true/false


def _cast(arr: np.ndarray, info: TensorInfo) -> np.ndarray:
    """To the input's dtype (a float past float32's range becomes inf: the API refuses it)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return arr.astype(info.dtype, copy=False)


def _leaves(value: Any, index: int | None = None) -> Iterator[tuple[int, Any]]:
    """(top-level index, leaf) for every non-list value, depth first."""
    stack = [(index, value)]
    while stack:
        i, v = stack.pop()
        if isinstance(v, list):
            stack.extend(reversed([(k if i is None else i, x) for k, x in enumerate(v)]))
        else:
            yield (i or 0), v


def _first_bool(value: Any) -> Any:
    return next((v for _, v in _leaves(value) if isinstance(v, bool)), None)


def _leaf_ok(v: Any, dtype: np.dtype) -> bool:
    if dtype.kind == "b":
        return isinstance(v, bool)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    if dtype.kind in _INT_KINDS:
        info = np.iinfo(dtype)
        return isinstance(v, int) and info.min <= v <= info.max
    return True


def _type_error(value: Any, info: TensorInfo) -> _ValueError:
    for index, leaf in _leaves(value):
        if not _leaf_ok(leaf, info.dtype):
            return _ValueError(f"JSON Value: {debug(leaf)} Type: {json_type(leaf)} is not of expected type: "
                               f"{info.tf_name}", index)
    return _ValueError(f"JSON Value: {debug(value)} does not form a tensor of type {info.tf_name}", 0)


def _string_array(value: Any, info: TensorInfo) -> np.ndarray:
    def leaf(v: Any, index: int) -> bytes:
        if isinstance(v, str):
            return v.encode("utf-8")
        if isinstance(v, dict):
            if not is_b64(v):
                raise _ValueError(f"JSON Value: {debug(v)} not formatted correctly for base64 data", index)
            return b64decode(v["b64"])
        raise _ValueError(f"JSON Value: {debug(v)} Type: {json_type(v)} is not of expected type: string", index)

    def walk(v: Any, index: int | None) -> Any:
        if isinstance(v, list):
            return [walk(x, k if index is None else index) for k, x in enumerate(v)]
        return leaf(v, index or 0)

    nested = walk(value, None)
    try:
        return np.array(nested, dtype=object)
    except ValueError as exc:
        raise bad(f"string values must form a rectangular array: {short(exc, 200)}") from None


def b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad("Unable to base64 decode") from None


# --- classify / regress examples -----------------------------------------------------------


def parse_examples(doc: Mapping[str, Any], method: str) -> list[bytes]:
    """Serialized tf.train.Example protos from {"examples": [...], "context": {...}}
    (context features are merged into every example, as TensorFlow Serving does)."""
    context = _example(doc["context"]).SerializeToString() if "context" in doc else b""
    examples = doc.get("examples")
    if "examples" not in doc:
        raise bad(f"JSON Value: {debug(doc)} When method is {method}, key 'examples' is expected and was not found")
    if not isinstance(examples, list):
        raise bad(f"JSON Value: {debug(doc)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise bad(f"JSON Value: {debug(doc)} 'examples' value is an empty array")
    return [context + _example(e).SerializeToString() for e in examples]


def _example(value: Any):
    from tensorflow.core.example import example_pb2

    if not isinstance(value, dict):
        raise bad(f"Example must be JSON object but got JSON {json_type(value)}")
    example = example_pb2.Example()
    for name, content in value.items():
        feature = example.features.feature[name]
        for v in content if isinstance(content, list) else [content]:
            _add_feature_value(feature, name, v)
    return example


def _add_feature_value(feature, name: str, v: Any) -> None:
    if v is None or isinstance(v, list) or (isinstance(v, dict) and not is_b64(v)):
        raise bad(f"Feature: {name} has element with unexpected JSON type: {json_type(v)}")
    if isinstance(v, (bool, int)):
        kind = "int64_list"
        if not isinstance(v, bool) and not -2**63 <= v < 2**63:
            raise bad(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
    else:
        kind = "float_list" if isinstance(v, float) else "bytes_list"
    have = feature.WhichOneof("kind")
    if have not in (None, kind):
        raise bad(f"Unexpected element type in feature: {name} expecting type: {have.split('_')[0]}")
    values = getattr(feature, kind).value
    if kind == "bytes_list":
        values.append(b64decode(v["b64"]) if isinstance(v, dict) else v.encode("utf-8"))
    else:
        values.append(int(v) if kind == "int64_list" else v)


# --- answers ----------------------------------------------------------------------------------


def dumps(payload: Any) -> bytes:
    return orjson.dumps(payload, option=_NUMPY)


def jsonable(arr: np.ndarray, name: str = "") -> Any:
    """An output array as orjson writes it: numbers as they are (float32 in float32's
    shortest form, NaN and Infinity as null), strings as text, `*_bytes` as b64."""
    if arr.dtype == object or arr.dtype.kind in "SU":
        as_b64 = name.endswith("_bytes")
        return _bytes_json(arr.tolist(), as_b64)
    if arr.dtype.kind == "f" and arr.dtype.itemsize < 4:  # float16, bfloat16
        arr = arr.astype(np.float32)
    elif arr.dtype.kind not in "fiub":
        return arr.tolist()
    if arr.ndim == 0:
        return arr[()]
    return np.ascontiguousarray(arr)


def _bytes_json(v: Any, as_b64: bool) -> Any:
    if isinstance(v, list):
        return [_bytes_json(x, as_b64) for x in v]
    if isinstance(v, str):
        v = v.encode("utf-8")
    if not as_b64:
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            pass  # not text: only base64 keeps it intact
    return {"b64": base64.b64encode(v).decode("ascii")}


def format_predict(outputs: Mapping[str, np.ndarray], fmt: str) -> dict[str, Any]:
    """{"predictions": [...]} (one entry per instance) or {"outputs": ...}."""
    names = sorted(outputs)
    if fmt == "columnar":
        if len(names) == 1:
            return {"outputs": jsonable(outputs[names[0]], names[0])}
        return {"outputs": {k: jsonable(outputs[k], k) for k in names}}
    batch = None
    for name in names:
        if outputs[name].ndim == 0:
            raise bad(f"Tensor name: {name} has no shape information ")
        if batch is not None and outputs[name].shape[0] != batch:
            raise bad(f"Tensor name: {name} has inconsistent batch size: {outputs[name].shape[0]} expecting: {batch}")
        batch = outputs[name].shape[0]
    if len(names) == 1:
        return {"predictions": jsonable(outputs[names[0]], names[0])}
    columns = {k: jsonable(outputs[k], k) for k in names}
    return {"predictions": [{k: columns[k][i] for k in names} for i in range(batch)]}


def format_classify(labels: np.ndarray | None, scores: np.ndarray | None) -> dict[str, Any]:
    """{"results": [[[label, score], ...], ...]} (label "" or score 0 when the signature lacks one)."""
    n, c = (labels if labels is not None else scores).shape
    text = _bytes_json(labels.tolist(), False) if labels is not None else [[""] * c] * n
    return {"results": [[[text[i][j], scores[i, j] if scores is not None else 0.0] for j in range(c)]
                        for i in range(n)]}


def format_regress(values: np.ndarray) -> dict[str, Any]:
    return {"results": jsonable(values.reshape(-1).astype(np.float32))}
