"""TensorFlow Serving's protos <-> the servable API's arrays: TensorProtos, the
Input of classify/regress requests, ModelSpecs and status answers. Used by the
gRPC layer and by warm-up replay (whose records are the same requests).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from zoo.serve_api import ModelSpec
from zoo.serve_status import Code, ServingError, short


def request_arrays(tensors: Mapping) -> dict[str, np.ndarray]:
    """A request's map<string, TensorProto> as arrays."""
    import tensorflow as tf

    out = {}
    for name, proto in tensors.items():
        try:
            out[name] = tf.make_ndarray(proto)
        except (TypeError, ValueError) as exc:
            raise ServingError(Code.INVALID_ARGUMENT, f"input {name!r}: cannot read its TensorProto: {short(exc)}") from None
    return out


def tensor_proto(arr: np.ndarray):
    import tensorflow as tf

    return tf.make_tensor_proto(arr)


def model_spec(proto) -> ModelSpec:
    """A ModelSpec proto (version or version_label, signature_name) as the API's."""
    choice = proto.WhichOneof("version_choice")
    return ModelSpec(proto.name, proto.version.value if choice == "version" else None,
                     proto.version_label if choice == "version_label" else None, proto.signature_name)


def fill_model_spec(target, servable, signature: str = "") -> None:
    """Fill a response's ModelSpec with the version that answered (as TensorFlow Serving's MakeModelSpec)."""
    target.name = servable.name
    target.version.value = servable.version
    if signature:
        target.signature_name = signature


def examples(input_proto) -> list[bytes]:
    """Serialized tf.Examples of a classify/regress Input; the context, when given, is
    prepended to each (the serialized protos merge, as in TensorFlow Serving's util.cc)."""
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        return [e.SerializeToString() for e in input_proto.example_list.examples]
    if kind == "example_list_with_context":
        with_context = input_proto.example_list_with_context
        context = with_context.context.SerializeToString()
        return [context + e.SerializeToString() for e in with_context.examples]
    return []


def status_proto(code: Code, message: str = ""):
    from tensorflow_serving.apis import status_pb2

    return status_pb2.StatusProto(error_code=int(code), error_message=message)


def version_status(servable):
    """A ModelVersionStatus proto from a servable's status."""
    from tensorflow_serving.apis import get_model_status_pb2

    status = servable.status()
    state = get_model_status_pb2.ModelVersionStatus.State.Value(status["state"])
    code = Code[status["status"]["error_code"]]
    return get_model_status_pb2.ModelVersionStatus(version=servable.version, state=state,
                                                   status=status_proto(code, status["status"]["error_message"]))
