"""Limits that keep a kernel alive: the largest image decoded and model file read, the memory one request may take.

Binder gives a user about 2 GB and Voila dashboards take students' uploads, so every request is
sized before work starts. The three settings live on this module: `max_pixels` (a count of
pixels), `max_model_bytes` and `memory_budget` (bytes). Each is read once, on first use, from its
environment variable (CONVVIZ_MAX_PIXELS, CONVVIZ_MAX_MODEL_BYTES, CONVVIZ_MEMORY_BUDGET) when set,
else it takes its default; assigning the attribute changes it for the session. Units:

- pixels are a whole count, optionally with K, M or G meaning thousand, million, billion
  (`50M` = 50,000,000 pixels); `1.5` is refused (not a whole number of pixels);
- bytes are a whole number, optionally with K, M, G or T (binary: `2G` = 2 x 2**30 bytes; `KB`,
  `KiB`, `MB`, `MiB`... mean the same); messages write sizes with the same binary units.

A variable that cannot be read is a ConvVizError naming it and its value, raised where the setting
is used (never at import); the CLI turns it into its one-line error. A budget of None means: a
share of the memory actually available now, read from the container's cgroup limit where there is
one (Binder, Docker) and from the operating system otherwise.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ConvVizError

DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_MODEL_BYTES = 2**30  # the largest total a model file may inflate to (VGG16 with its classifier: 528 MB)
AVAILABLE_SHARE = 0.5  # a request may take at most this share of the memory available now
MIN_BUDGET = 64 * 2**20  # never plan with less than this, even on a crowded machine
_BYTE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_BYTE_SUFFIXES = {"": 1, "B": 1} | {u + s: f for u, f in _BYTE_UNITS.items() if u for s in ("", "B", "IB")}
_COUNT_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9}
_NUMBER = re.compile(r"^\s*([0-9][0-9_]*(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*$")


def _split(text: str) -> tuple[str, str] | None:
    """A number and its unit letters ('2.5', 'GiB'), or None when `text` is not of that form."""
    match = _NUMBER.match(text)
    return (match.group(1).replace("_", ""), match.group(2).upper()) if match else None


def _origin(name: str | None, text: Any) -> str:
    """How a message names the value it could not read: the variable and its value, or the value."""
    return f"{name}={str(text)!r}" if name else repr(text)


def parse_bytes(text: str | int | float, name: str | None = None) -> int:
    """'512M', '2G', '1500000' -> bytes (K/M/G/T are binary); a ConvVizError naming `name` otherwise."""
    how = "write a whole number of bytes, or one with K, M, G or T (binary units), e.g. 1500000, 512M or 2G"
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ConvVizError(f"{_origin(name, text)} is not a size in bytes; {how}.")
    if isinstance(text, (int, float)):
        value, unit = float(text), ""
    else:
        parts = _split(text)
        if parts is None or parts[1] not in _BYTE_SUFFIXES:
            raise ConvVizError(f"{_origin(name, text)} is not a size in bytes; {how}.")
        value, unit = float(parts[0]), parts[1]
    if not math.isfinite(value) or value <= 0:
        raise ConvVizError(f"{_origin(name, text)}: a size in bytes must be positive and finite; {how}.")
    if unit in ("", "B") and value != int(value):
        raise ConvVizError(f"{_origin(name, text)}: a number of bytes must be whole; {how}.")
    return max(1, int(value * _BYTE_SUFFIXES[unit]))


def parse_count(text: str | int, name: str | None = None, what: str = "pixels") -> int:
    """'50000000', '50M', '2G' -> a whole count (K/M/G are thousand/million/billion); a ConvVizError otherwise."""
    how = (f"write a whole number of {what}, or one with K, M or G for thousand, million or billion, "
           "e.g. 50000000 or 50M")
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ConvVizError(f"{_origin(name, text)} is not a whole number of {what}; {how}.")
    parts = _split(str(text))
    if parts is None or parts[1] not in _COUNT_UNITS:
        raise ConvVizError(f"{_origin(name, text)} is not a whole number of {what}; {how}.")
    value = float(parts[0]) * _COUNT_UNITS[parts[1]]
    if value != int(value) or value < 1:
        raise ConvVizError(f"{_origin(name, text)}: the number of {what} must be a whole number of at least 1; {how}.")
    return int(value)


# The settings: attribute -> (environment variable, parser, default). Assign them on this module:
# convviz_widgets.limits.max_pixels = 80_000_000. Until then, the first read takes the variable or the default.
SETTINGS: dict[str, tuple[str, Callable[[str, str], int], int | None]] = {
    "max_pixels": ("CONVVIZ_MAX_PIXELS", parse_count, DEFAULT_MAX_PIXELS),
    "max_model_bytes": ("CONVVIZ_MAX_MODEL_BYTES", parse_bytes, DEFAULT_MAX_MODEL_BYTES),
    "memory_budget": ("CONVVIZ_MEMORY_BUDGET", parse_bytes, None),  # bytes; None: a share of what is available
}


def __getattr__(name: str) -> Any:
    """A setting read for the first time: from its environment variable, else its default (then kept)."""
    if name not in SETTINGS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    variable, parse, default = SETTINGS[name]
    text = os.environ.get(variable, "").strip()
    value = parse(text, variable) if text else default
    return globals().setdefault(name, value)  # atomic: two first readers keep the same value


def check_settings() -> None:
    """Read every setting now, so a bad environment variable is reported before any work starts."""
    for name in SETTINGS:
        getattr(limits, name)


# `from convviz_widgets.limits import limits` gives this module too, so `limits.max_pixels` reads the setting.
limits = sys.modules[__name__]


def _read_int(path: Path) -> int | None:
    """An integer from a cgroup/proc file, or None when absent, unreadable or 'max'."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_headroom() -> int | None:
    """Bytes left under the container's memory limit (cgroup v2, then v1), or None without one."""
    root = Path("/sys/fs/cgroup")
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        limit = _read_int(root / limit_file)
        usage = _read_int(root / usage_file)
        if limit is not None and usage is not None and limit < 2**60:  # v1 reports "no limit" as ~2**63
            return max(0, limit - usage)
    return None


def _os_available() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else free physical pages, else None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def available_memory() -> int | None:
    """Bytes this process can still take: the smaller of the container's headroom and the OS's."""
    known = [b for b in (_cgroup_headroom(), _os_available()) if b is not None]
    return min(known) if known else None


# Free bytes of the accelerator that computes, or None on CPU; set by `core.device` (this module imports no TF).
device_memory: Callable[[], int | None] | None = None


def budget_bytes() -> int:
    """Bytes one request may use now: the setting, or a share of what is available (at least MIN_BUDGET).

    When a GPU computes, the share of its free memory bounds the budget too.
    """
    setting = limits.memory_budget
    if setting is not None:
        return int(setting)
    available = available_memory()
    budget = 2 * 2**30 if available is None else max(MIN_BUDGET, int(available * AVAILABLE_SHARE))
    device = device_memory() if device_memory is not None else None
    if device is not None:
        budget = min(budget, max(MIN_BUDGET, int(device * AVAILABLE_SHARE)))
    return budget


def size_text(n_bytes: float) -> str:
    """Bytes as a size a person reads, honest at every scale: '1 byte', '512 bytes', '1.5 KB', '12 MB', '2.0 GB'.

    KB, MB and GB are binary (2**10, 2**20, 2**30 bytes), as in the settings.
    """
    n = float(n_bytes)
    if n < 1024:
        whole = max(0, round(n))
        return f"{whole} byte" if whole == 1 else f"{whole} bytes"
    for unit, factor in (("KB", 2**10), ("MB", 2**20)):
        if n < 1024 * factor:
            value = n / factor
            return f"{value:.1f} {unit}" if value < 10 else f"{value:,.0f} {unit}"
    value = n / 2**30
    return f"{value:,.2f} GB" if value < 10 else f"{value:,.1f} GB"


mib = size_text  # the name earlier versions used


def fit_batch(per_item: float, requested: int, *, fixed: float = 0.0, what: str = "items",
              lower: str = "the batch size") -> int:
    """How many items of `per_item` bytes (plus `fixed` bytes once) fit the budget, at most `requested`.

    Work is split into chunks of that many; when not even one item fits, a ConvVizError gives the
    estimate, the budget and what to lower.
    """
    budget = budget_bytes()
    room = budget - float(fixed)
    if room < per_item:
        need = float(fixed) + per_item
        raise ConvVizError(
            f"This request needs about {size_text(need)} for one of its {what}, more than the memory budget of "
            f"{size_text(budget)}. Lower {lower}, or raise the budget: convviz_widgets.limits.memory_budget = "
            f"<bytes> (or the CONVVIZ_MEMORY_BUDGET environment variable)."
        )
    return max(1, min(int(requested), int(room // max(per_item, 1.0))))


def check_fits(estimate: float, *, what: str, lower: str) -> None:
    """Refuse work that cannot be split and whose estimate exceeds the budget."""
    if limits.memory_budget is None and estimate <= MIN_BUDGET:
        return  # the automatic budget is never below MIN_BUDGET: no need to read the system's memory
    budget = budget_bytes()
    if estimate > budget:
        raise ConvVizError(
            f"{what} needs about {size_text(estimate)}, more than the memory budget of {size_text(budget)}. "
            f"Lower {lower}, or raise the budget: convviz_widgets.limits.memory_budget = <bytes> "
            f"(or the CONVVIZ_MEMORY_BUDGET environment variable)."
        )
