"""TensorFlow Serving's gRPC API over the servable API, with grpcio and the
protos of tensorflow-serving-api: PredictionService (Predict, Classify,
Regress, MultiInference, GetModelMetadata) and ModelService (GetModelStatus,
HandleReloadConfigRequest). A client built on TensorFlow Serving's own stubs
works unchanged; errors carry TensorFlow Serving's codes (INVALID_ARGUMENT,
NOT_FOUND, FAILED_PRECONDITION, ...).

A request's deadline bounds its wait for the model; messages over `max_body`
bytes are refused by grpcio (RESOURCE_EXHAUSTED); at most `max_concurrent_rpcs`
calls are accepted at once (RESOURCE_EXHAUSTED past it).
"""

from __future__ import annotations

import functools
import time
from concurrent import futures
from pathlib import Path

from zoo import serve_proto
from zoo.serve_api import ModelSpec, ServingAPI
from zoo.serve_status import Code, ServingError, short


def _rpc(api_name: str):
    """Run a servicer method inside the API's metrics and map ServingError to its gRPC code."""
    def wrap(method):
        @functools.wraps(method)
        def call(self, request, context):
            import grpc

            has_spec = "model_spec" in request.DESCRIPTOR.fields_by_name and request.HasField("model_spec")
            model = request.model_spec.name if has_spec else ""
            try:
                with self.api.observe("GRPC", api_name, model) as observed:
                    deadline = None
                    remaining = context.time_remaining()
                    if remaining is not None:
                        deadline = time.monotonic() + remaining
                    return method(self, request, observed, deadline)
            except ServingError as exc:
                context.abort(grpc.StatusCode[exc.code.name], str(exc))
            except Exception as exc:  # a bug or a model failure: answer, stay up
                context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {short(exc)}")
        return call
    return wrap


def _spec(request) -> ModelSpec:
    if not request.HasField("model_spec"):
        raise ServingError(Code.INVALID_ARGUMENT, "Missing ModelSpec")
    return serve_proto.model_spec(request.model_spec)


def servicers(api: ServingAPI, config_dir: Path):
    """(PredictionService, ModelService) servicer instances."""
    from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                         inference_pb2, model_management_pb2, model_service_pb2_grpc,
                                         predict_pb2, prediction_service_pb2_grpc, regression_pb2)

    class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
        def __init__(self) -> None:
            self.api = api

        @_rpc("Predict")
        def Predict(self, request, call, deadline):
            inputs = serve_proto.request_arrays(request.inputs)
            result = api.predict(_spec(request), inputs, list(request.output_filter), deadline, call)
            response = predict_pb2.PredictResponse()
            serve_proto.fill_model_spec(response.model_spec, result.servable, result.signature)
            for name, value in result.outputs.items():
                response.outputs[name].CopyFrom(serve_proto.tensor_proto(value))
            return response

        @_rpc("Classify")
        def Classify(self, request, call, deadline):
            result = api.classify(_spec(request), serve_proto.examples(request.input), deadline, call)
            response = classification_pb2.ClassificationResponse()
            serve_proto.fill_model_spec(response.model_spec, result.servable, result.signature)
            _fill_classifications(response.result, result.outputs)
            return response

        @_rpc("Regress")
        def Regress(self, request, call, deadline):
            result = api.regress(_spec(request), serve_proto.examples(request.input), deadline, call)
            response = regression_pb2.RegressionResponse()
            serve_proto.fill_model_spec(response.model_spec, result.servable, result.signature)
            for value in result.outputs["outputs"]:
                response.result.regressions.add(value=float(value))
            return response

        @_rpc("MultiInference")
        def MultiInference(self, request, call, deadline):
            examples = serve_proto.examples(request.input)
            specs = [serve_proto.model_spec(task.model_spec) for task in request.tasks]
            if not specs:
                raise ServingError(Code.INVALID_ARGUMENT, "Inference request should have at least one task")
            if len({(s.name, s.version, s.label) for s in specs}) > 1:
                raise ServingError(Code.INVALID_ARGUMENT, "All ModelSpecs in a MultiInferenceRequest must access "
                                                          "the same model name and version")
            if len({s.signature for s in specs}) < len(specs):
                raise ServingError(Code.INVALID_ARGUMENT, "Duplicate evaluation of signature")
            response = inference_pb2.MultiInferenceResponse()
            call["model"] = specs[0].name
            for task, spec in zip(request.tasks, specs):
                method = {"tensorflow/serving/classify": "classify", "tensorflow/serving/regress": "regress"}.get(
                    task.method_name)
                if method is None:
                    raise ServingError(Code.UNIMPLEMENTED, f"Unsupported signature method_name: {task.method_name}")
                result = getattr(api, method)(spec, examples, deadline, call)
                out = response.results.add()
                serve_proto.fill_model_spec(out.model_spec, result.servable, result.signature)
                if method == "classify":
                    _fill_classifications(out.classification_result, result.outputs)
                else:
                    for value in result.outputs["outputs"]:
                        out.regression_result.regressions.add(value=float(value))
            return response

        @_rpc("GetModelMetadata")
        def GetModelMetadata(self, request, call, deadline):
            fields = list(request.metadata_field)
            if not fields:
                raise ServingError(Code.INVALID_ARGUMENT, "GetModelMetadataRequest must specify at least one "
                                                          "metadata_field")
            unsupported = [f for f in fields if f != "signature_def"]
            if unsupported:
                raise ServingError(Code.INVALID_ARGUMENT, f"Metadata field {unsupported[0]} is not supported")
            servable = api.servable(_spec(request))
            call["version"] = str(servable.version)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            serve_proto.fill_model_spec(response.model_spec, servable)
            response.metadata["signature_def"].Pack(servable.signature_def_map)
            return response

    class ModelService(model_service_pb2_grpc.ModelServiceServicer):
        def __init__(self) -> None:
            self.api = api

        @_rpc("GetModelStatus")
        def GetModelStatus(self, request, call, deadline):
            spec = _spec(request)
            response = get_model_status_pb2.GetModelStatusResponse()
            for servable in api.status(spec.name, spec.version, spec.label):
                response.model_version_status.append(serve_proto.version_status(servable))
            return response

        @_rpc("HandleReloadConfigRequest")
        def HandleReloadConfigRequest(self, request, call, deadline):
            api.reload_config(request.config, config_dir)
            return model_management_pb2.ReloadConfigResponse(status=serve_proto.status_proto(Code.OK))

    return PredictionService(), ModelService()


def _fill_classifications(result, outputs) -> None:
    labels, scores = outputs.get("classes"), outputs.get("scores")
    n, c = (labels if labels is not None else scores).shape
    for i in range(n):
        classifications = result.classifications.add()
        for j in range(c):
            item = classifications.classes.add()
            if labels is not None:
                label = labels[i, j]
                item.label = label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)
            if scores is not None:
                item.score = float(scores[i, j])


def create_server(api: ServingAPI, address: str, *, threads: int, max_message: int, max_concurrent_rpcs: int,
                  config_dir: Path):
    """A started-later grpc.Server on `address` ("host:port"; port 0: any free one) and its port."""
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="zoo-grpc"),
                         maximum_concurrent_rpcs=max_concurrent_rpcs,
                         options=[("grpc.max_receive_message_length", max_message),
                                  ("grpc.max_send_message_length", -1),
                                  ("grpc.so_reuseport", 0)])
    prediction, model = servicers(api, config_dir)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(prediction, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(model, server)
    port = server.add_insecure_port(address)
    if not port:
        raise ServingError(Code.UNAVAILABLE, f"cannot listen for gRPC on {address}")
    return server, port
