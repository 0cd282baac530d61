"""Limits that keep a kernel alive: the largest image decoded and the memory one request may take.

Binder gives a user about 2 GB and Voila dashboards take students' uploads, so every request is
sized before work starts. `max_pixels` and `memory_budget` on this module are the two settings
(also read from the environment variables CONVVIZ_MAX_PIXELS and CONVVIZ_MEMORY_BUDGET, in
bytes or with a K/M/G suffix). A budget of None means: a share of the memory actually available
now, read from the container's cgroup limit where there is one (Binder, Docker) and from the
operating system otherwise.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import ConvVizError

DEFAULT_MAX_PIXELS = 50_000_000
AVAILABLE_SHARE = 0.5  # a request may take at most this share of the memory available now
MIN_BUDGET = 64 * 2**20  # never plan with less than this, even on a crowded machine
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_bytes(text: str | int | float) -> int:
    """'512M', '2G', '1500000' -> bytes; a ConvVizError for anything else."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        raw = str(text).strip().upper().removesuffix("B").removesuffix("I")
        unit = raw[-1] if raw and raw[-1] in _UNITS else ""
        try:
            value = float(raw[: len(raw) - len(unit)])
        except ValueError:
            raise ConvVizError(f"Cannot read {text!r} as a size in bytes; write e.g. 1500000, 512M or 2G.") from None
    if not math.isfinite(value) or value <= 0:
        raise ConvVizError(f"A size in bytes must be positive and finite; got {text!r}.")
    return int(value * _UNITS[unit])


def _from_env(name: str, default: int | None) -> int | None:
    """A size from the environment variable `name`, or `default` when it is unset."""
    text = os.environ.get(name)
    return parse_bytes(text) if text else default


# The two settings. Assign them on this module: convviz_widgets.limits.max_pixels = 80_000_000.
max_pixels: int = _from_env("CONVVIZ_MAX_PIXELS", DEFAULT_MAX_PIXELS)  # type: ignore[assignment]
memory_budget: int | None = _from_env("CONVVIZ_MEMORY_BUDGET", None)  # bytes; None: a share of what is available

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
    if memory_budget is not None:
        return int(memory_budget)
    available = available_memory()
    budget = 2 * 2**30 if available is None else max(MIN_BUDGET, int(available * AVAILABLE_SHARE))
    device = device_memory() if device_memory is not None else None
    if device is not None:
        budget = min(budget, max(MIN_BUDGET, int(device * AVAILABLE_SHARE)))
    return budget


def mib(n_bytes: float) -> str:
    """Bytes as a readable size for messages."""
    return f"{n_bytes / 2**20:,.0f} MB" if n_bytes < 10 * 2**30 else f"{n_bytes / 2**30:,.1f} GB"


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
            f"This request needs about {mib(need)} for one of its {what}, more than the memory budget of "
            f"{mib(budget)}. Lower {lower}, or raise the budget: convviz_widgets.limits.memory_budget = "
            f"<bytes> (or the CONVVIZ_MEMORY_BUDGET environment variable)."
        )
    return max(1, min(int(requested), int(room // max(per_item, 1.0))))


def check_fits(estimate: float, *, what: str, lower: str) -> None:
    """Refuse work that cannot be split and whose estimate exceeds the budget."""
    if memory_budget is None and estimate <= MIN_BUDGET:
        return  # the automatic budget is never below MIN_BUDGET: no need to read the system's memory
    budget = budget_bytes()
    if estimate > budget:
        raise ConvVizError(
            f"{what} needs about {mib(estimate)}, more than the memory budget of {mib(budget)}. Lower {lower}, "
            f"or raise the budget: convviz_widgets.limits.memory_budget = <bytes> "
            f"(or the CONVVIZ_MEMORY_BUDGET environment variable)."
        )
