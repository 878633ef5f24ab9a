"""Files that a kill at any moment leaves whole: the old version or the new one,
never a torn one. One helper for the whole project (run directories, backups,
checkpoints, sweep records).

A file is written under a hidden temporary name beside its final place
(`.tmp-PID-NAME`, so it keeps NAME's suffixes: Keras insists on `.keras` and
`.weights.h5`), flushed to disk, then renamed over the final name (the atomic
step) and the folder flushed so the rename survives a power cut too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: the temporary name of a file being written: .tmp-PID-NAME
TEMP_FILE = re.compile(r"^\.tmp-(\d+)-(.+)$")


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write `path`'s new content to; when the block ends
    without an exception and the file was written, it replaces `path` atomically
    (a block that writes nothing leaves `path` as it was). On an exception the
    temporary file is removed and `path` is untouched."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield tmp
        if tmp.exists():
            _fsync(tmp)
            os.replace(tmp, path)
            _fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with replacing(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write JSON atomically (numpy values as Python numbers, anything else as text)."""
    write_text(path, json.dumps(data, indent=2, default=_jsonable))


def _jsonable(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def remove_stale(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files (and folders) in `folder` left by processes that
    are gone (a write or removal killed half-way); returns them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if (m := TEMP_FILE.match(p.name)) and not process_alive(int(m[1]))]
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return stale


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
