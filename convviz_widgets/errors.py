"""Exceptions that tell the user what was wrong and what to do about it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConvVizError(ValueError):
    """Bad input: the message says what was wrong and how to fix it."""


class Cancelled(RuntimeError):
    """Raised when a progress callback asks a long computation to stop."""


def suggest(name: str, choices: Iterable[str], limit: int = 3) -> str:
    """Return a ' Did you mean ...?' hint for a misspelt name, or ''."""
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=limit, cutoff=0.5)
    if not close:
        # Inner layers of nested models are named "outer/inner": match the tail too.
        tails = {c.rsplit("/", 1)[-1]: c for c in choices}
        close = [tails[t] for t in difflib.get_close_matches(name, list(tails), n=limit, cutoff=0.5)]
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
