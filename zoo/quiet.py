"""Keep TensorFlow's start-up noise off the user's screen unless they ask (-v).

TensorFlow 2.21 writes its C++ start-up lines (absl's "All log messages before
absl::InitializeLog()", the oneDNN and CUDA-stub notes, "failed call to cuInit")
straight to file descriptor 2 while it is imported, before any Python setting
or TF_CPP_MIN_LOG_LEVEL can act on them. `install()` sets TF_CPP_MIN_LOG_LEVEL
(for the C++ lines after the import) and hooks the first `import tensorflow`
so that, while it runs, descriptor 2 goes to a temporary file; the lines are
shown only if the import fails. TensorFlow's Python logger is set to errors
once it is imported.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys
import tempfile

#: TF_CPP_MIN_LOG_LEVEL by verbosity: 3 hides C++ info, warnings and errors; 0 shows everything
LEVELS = {0: "3", 1: "0"}


@contextlib.contextmanager
def native_stderr_to_file():
    """Send file descriptor 2 (C and C++ code's stderr) to a temporary file; on an
    exception, replay what was written there before raising."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        with native_stderr_to_file():
            self.loader.exec_module(module)
        import logging

        logging.getLogger("tensorflow").setLevel(logging.ERROR)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Wraps the loader of `tensorflow` the first time it is imported."""

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install(verbose: int = 0) -> None:
    """Quiet TensorFlow's start-up (verbose 0), or let it all through (verbose >= 1).
    A TF_CPP_MIN_LOG_LEVEL the user set is kept."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", LEVELS[min(verbose, 1)])
    if verbose < 1 and "tensorflow" not in sys.modules and not any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())


# --- the zoo's own progress lines (pretraining layers, ...) ------------------------------

_SPEAKING = [True]


@contextlib.contextmanager
def speaking(on: bool):
    """Within this block `say` prints (on) or keeps quiet (off): train() turns it off for verbose=0."""
    _SPEAKING.append(bool(on))
    try:
        yield
    finally:
        _SPEAKING.pop()


def say(line: str) -> None:
    """A progress line of the zoo's own (not Keras's), unless told to be quiet."""
    if _SPEAKING[-1]:
        print(line, flush=True)
