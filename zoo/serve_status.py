"""Status codes of `zoo serve`: TensorFlow Serving's canonical codes, the HTTP
status each maps to (as tensorflow_serving/model_servers/http_server.cc maps
them) and the one error type the serving modules raise.

Both protocols answer from a ServingError: REST as `{"error": message}` with
`http_status`, gRPC with the code of the same name.
"""

from __future__ import annotations

import enum


class Code(enum.IntEnum):
    """google.rpc / absl canonical status codes (the values gRPC uses)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


HTTP_STATUS = {
    Code.OK: 200, Code.CANCELLED: 499, Code.UNKNOWN: 500, Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504, Code.NOT_FOUND: 404, Code.ALREADY_EXISTS: 409, Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429, Code.FAILED_PRECONDITION: 400, Code.ABORTED: 409, Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501, Code.INTERNAL: 500, Code.UNAVAILABLE: 503, Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}


class ServingError(Exception):
    """An error answered to the client: a canonical code and a message.

    `http` overrides the HTTP status where REST says more than the code (413 for
    a body or batch over the server's limits)."""

    def __init__(self, code: Code, message: str, http: int | None = None) -> None:
        super().__init__(message)
        self.code = Code(code)
        self.http_status = http or HTTP_STATUS[self.code]

    def __reduce__(self):  # picklable: the large-body decoder process raises it too
        return (ServingError, (self.code, str(self), self.http_status))

    @property
    def status(self) -> int:
        """The HTTP status (kept for callers of the first zoo.serve API)."""
        return self.http_status

    @property
    def message(self) -> str:
        return str(self)


def batch_limit(examples: int, limit: int) -> None:
    """413 when a request holds more than `limit` examples (--max-batch; 0: no limit)."""
    if limit and examples > limit:
        raise ServingError(Code.RESOURCE_EXHAUSTED, f"{examples} examples in one request: the server takes at most "
                                                    f"{limit} (--max-batch); split the request", http=413)


def short(exc: BaseException, limit: int = 500) -> str:
    """The first line of an exception's message (or its type), at most `limit` characters."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__
