"""The one exception type for errors a user can cause.

The CLI prints a ZooError as one line and exits 2; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ZooError(Exception):
    """A user error: unknown name, bad value, unreadable file, shape mismatch."""


class PluginError(ZooError):
    """A plugin that cannot be loaded or is not a valid model spec."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """' Did you mean: a, b?' for the closest known names, or ''."""
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.5)
    return f" Did you mean: {', '.join(close)}?" if close else ""
