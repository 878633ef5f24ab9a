"""Server-side batching (`zoo serve --enable_batching`): concurrent requests to the
same signature of the same version are concatenated along their first dimension,
run as one signature call, and each caller gets its own rows back.

Parameters are TensorFlow Serving's BatchingParameters, read from
`--batching_parameters_file` in its text format (e.g. `max_batch_size { value:
128 }`), with its defaults (SharedBatchScheduler's QueueOptions):

- max_batch_size (1000): most examples in one batch; a larger request is refused;
- batch_timeout_micros (0): how long a batch that is not full waits for more;
- num_batch_threads (the number of cores): batches run at once;
- max_enqueued_batches (10): batches waiting per queue; past that RESOURCE_EXHAUSTED;
- allowed_batch_sizes: batches are padded (with copies of their last row) up to the
  next allowed size.

A batch threads picks the queue whose oldest request waited longest, so every
model gets its turn.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo.serve_status import Code, ServingError

#: BatchingParameters as in tensorflow_serving/servables/tensorflow/session_bundle_config.proto
#: (that proto is not in the tensorflow-serving-api wheel): (name, number, wrapper type or "repeated")
_FIELDS = [("max_batch_size", 1, "Int64Value"), ("batch_timeout_micros", 2, "Int64Value"),
           ("max_enqueued_batches", 3, "Int64Value"), ("num_batch_threads", 4, "Int64Value"),
           ("thread_pool_name", 5, "StringValue"), ("allowed_batch_sizes", 6, "repeated"),
           ("pad_variable_length_inputs", 7, "bool"), ("enable_large_batch_splitting", 8, "BoolValue"),
           ("max_execution_batch_size", 9, "Int64Value")]


def _batching_parameters_class():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    file = descriptor_pb2.FileDescriptorProto(name="zoo/batching_parameters.proto", package="tensorflow.serving",
                                              syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    message = file.message_type.add(name="BatchingParameters")
    F = descriptor_pb2.FieldDescriptorProto
    for name, number, kind in _FIELDS:
        if kind == "repeated":
            message.field.add(name=name, number=number, type=F.TYPE_INT64, label=F.LABEL_REPEATED)
        elif kind == "bool":
            message.field.add(name=name, number=number, type=F.TYPE_BOOL, label=F.LABEL_OPTIONAL)
        else:
            message.field.add(name=name, number=number, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                              type_name=f".google.protobuf.{kind}")
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


@dataclass(frozen=True)
class BatchingOptions:
    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    num_batch_threads: int = field(default_factory=lambda: os.cpu_count() or 2)
    max_enqueued_batches: int = 10
    allowed_batch_sizes: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str) -> "BatchingOptions":
        """From a BatchingParameters text proto; ValueError names what is wrong."""
        from google.protobuf import text_format

        proto = _batching_parameters_class()()
        try:
            text_format.Parse(text, proto)
        except text_format.ParseError as exc:
            raise ValueError(f"cannot parse the batching parameters: {exc}") from None
        values = {name: getattr(proto, name).value for name, _, kind in _FIELDS
                  if kind.endswith("Value") and proto.HasField(name) and name in cls.__dataclass_fields__}
        options = cls(**values, allowed_batch_sizes=tuple(proto.allowed_batch_sizes))
        options.check()
        return options

    @classmethod
    def read(cls, path: str | os.PathLike | None) -> "BatchingOptions":
        if not path:
            return cls()
        try:
            return cls.parse(Path(path).read_text())
        except OSError as exc:
            raise ValueError(f"cannot read the batching parameters file {str(path)!r}: {exc.strerror}") from None

    def check(self) -> None:
        if self.max_batch_size < 1 or self.num_batch_threads < 1 or self.max_enqueued_batches < 1:
            raise ValueError("max_batch_size, num_batch_threads and max_enqueued_batches must be at least 1")
        if self.batch_timeout_micros < 0:
            raise ValueError("batch_timeout_micros must not be negative")
        sizes = self.allowed_batch_sizes
        if sizes and (list(sizes) != sorted(set(sizes)) or sizes[-1] != self.max_batch_size):
            raise ValueError(f"allowed_batch_sizes must increase and end with max_batch_size "
                             f"({self.max_batch_size}); got {list(sizes)}")


@dataclass
class _Task:
    servable: object
    signature: object
    arrays: dict[str, np.ndarray]
    size: int
    future: Future
    enqueued: float


class Batcher:
    """Queues of tasks, one per (version, signature, inner shapes), and the threads that run them."""

    def __init__(self, options: BatchingOptions, on_batch=None) -> None:
        self.options = options
        self.on_batch = on_batch  # fn(model name, batch size)
        self._queues: dict[tuple, deque] = {}
        self._cond = threading.Condition()
        self._stopped = False
        self._threads = [threading.Thread(target=self._work, name=f"zoo-batch-{i}", daemon=True)
                         for i in range(options.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def run(self, servable, signature, arrays: dict[str, np.ndarray], deadline: float | None) -> dict[str, np.ndarray]:
        """Enqueue one request's arrays and wait for its rows of the batch's outputs."""
        size = next(iter(arrays.values())).shape[0]
        limit = self.options.max_batch_size
        if size > limit:
            raise ServingError(Code.INVALID_ARGUMENT, f"Task size {size} is larger than maximum input batch size {limit}")
        key = (id(servable), signature.name,
               tuple((k, a.dtype.str, a.shape[1:]) for k, a in sorted(arrays.items())))
        task = _Task(servable, signature, arrays, size, Future(), time.monotonic())
        with self._cond:
            queue = self._queues.setdefault(key, deque())
            if sum(t.size for t in queue) + size > limit * self.options.max_enqueued_batches:
                raise ServingError(Code.RESOURCE_EXHAUSTED, "The batch scheduling queue to which this task was "
                                                            "submitted is full")
            queue.append(task)
            self._cond.notify()
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return task.future.result(timeout=timeout)
        except TimeoutError:
            task.future.cancel()
            raise ServingError(Code.DEADLINE_EXCEEDED, "Deadline exceeded while waiting in the batch queue") from None

    def _work(self) -> None:
        while True:
            with self._cond:
                batch = self._next_batch()
                if batch is None:
                    return
            self._run(batch[1])

    def _next_batch(self):
        """(key, tasks) of the queue waiting longest, once full or past the timeout (holds the lock)."""
        timeout = self.options.batch_timeout_micros / 1e6
        while not self._stopped:
            ready = [(q[0].enqueued, key) for key, q in self._queues.items() if q]
            if not ready:
                self._cond.wait()
                continue
            oldest, key = min(ready)
            queue = self._queues[key]
            wait = oldest + timeout - time.monotonic()
            if wait > 0 and sum(t.size for t in queue) < self.options.max_batch_size:
                self._cond.wait(wait)
                continue
            tasks, total = [], 0
            while queue and total + queue[0].size <= self.options.max_batch_size:
                task = queue.popleft()
                if task.future.set_running_or_notify_cancel():  # False: the caller gave up
                    tasks.append(task)
                    total += task.size
            if not queue:
                del self._queues[key]
            if tasks:
                return key, tasks
        return None

    def _run(self, tasks: list[_Task]) -> None:
        servable, signature = tasks[0].servable, tasks[0].signature
        try:
            inputs = {k: np.concatenate([t.arrays[k] for t in tasks]) for k in tasks[0].arrays}
            total = sum(t.size for t in tasks)
            padded = self._padded_size(total)
            if padded > total:
                inputs = {k: np.concatenate([v, np.repeat(v[-1:], padded - total, axis=0)]) for k, v in inputs.items()}
            outputs = servable.run(signature.name, inputs)
            if self.on_batch is not None:
                self.on_batch(servable.name, total)
            start = 0
            for task in tasks:
                task.future.set_result({k: v[start:start + task.size] for k, v in outputs.items()})
                start += task.size
        except BaseException as exc:  # every caller hears of the failure
            for task in tasks:
                if not task.future.done():
                    task.future.set_exception(exc)

    def _padded_size(self, total: int) -> int:
        return next((s for s in self.options.allowed_batch_sizes if s >= total), total)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)
