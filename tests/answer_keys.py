"""An answer-key attempt, run inside a course notebook: can anything the set-up cell imports give an answer?

tests/test_course.py puts this module's source at the top of every answer cell of a generated
submission, followed by ``attempt(names, solution, test, globals())``. For each answer variable it
calls every public callable of the package modules and functions in the notebook's namespace (``cv``,
``checks``, ``demo``, ``metrics``, ``show``, ...) with plausible arguments taken from that namespace
(the models, pictures, layer names and whole numbers the set-up cell made), and collects each result,
its public attributes, items and elements (two levels deep), and the callables themselves. A candidate
of the right form (the form of the instructor's answer, computed in a scratch copy of the namespace
that also holds the instructor's earlier answers) replaces that one variable, the other answers are
the instructor's, and the assignment's own test cell (visible and hidden tests) decides. The first
candidate that passes becomes the submitted answer; when none passes, the first candidate of the right
form does. Everything is recorded in ``_KEY_REPORT``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import io
import signal
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

PACKAGE = "convviz_widgets"
CALL_SECONDS = 30  # a candidate call that takes longer is abandoned (the slowest measured: 3.4 s)
SKIPPED_MODULES = (f"{PACKAGE}.widgets",)  # panels and tabs start worker threads; they hold no answers


def package_callables(namespace: Mapping[str, Any]) -> list[tuple[str, Callable[..., Any]]]:
    """(name, callable) for the public callables of every package module and function in the namespace."""
    found: dict[int, tuple[str, Callable[..., Any]]] = {}
    for key, value in namespace.items():
        if key.startswith("_"):
            continue
        if isinstance(value, types.ModuleType) and value.__name__.startswith(PACKAGE):
            for name in dir(value):
                member = getattr(value, name, None)
                if not name.startswith("_") and callable(member) and from_package(member):
                    found.setdefault(id(member), (f"{key}.{name}", member))
        elif callable(value) and from_package(value):
            found.setdefault(id(value), (key, value))
    return list(found.values())


def from_package(member: Any) -> bool:
    """A function or class of the package, outside the widgets room, that is not an exception."""
    module = getattr(member, "__module__", "") or ""
    if not module.startswith(PACKAGE) or module.startswith(SKIPPED_MODULES):
        return False
    return not (isinstance(member, type) and issubclass(member, BaseException))


def argument_pools(namespace: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Plausible arguments: the namespace's models, pictures, layer names and whole numbers."""
    import keras

    values = [v for k, v in namespace.items() if not k.startswith("_")]
    values += [v for d in values if isinstance(d, Mapping) for v in d.values()]
    models = [v for v in values if isinstance(v, keras.Model)]
    layer_names = {layer.name for m in models for layer in m.layers}
    pictures = [v for v in values if isinstance(v, np.ndarray) and v.ndim in (3, 4) and v.shape[-1] == 3]
    pictures += [v.image for v in values if isinstance(getattr(v, "image", None), np.ndarray)]
    return {
        "model": unique(models),
        "picture": unique(pictures),
        "layer": sorted({v for v in values if isinstance(v, str) and v in layer_names}),
        "number": sorted({int(v) for v in values if isinstance(v, (int, np.integer)) and not isinstance(v, bool)}),
    }


def unique(items: list[Any]) -> list[Any]:
    """The items without repeats (by identity)."""
    return list({id(v): v for v in items}.values())


def argument_tuples(pools: dict[str, list[Any]]) -> list[tuple[Any, ...]]:
    """(), one model, one picture, and model + picture / layer / layer + number / picture + number."""
    m, p, s, n = pools["model"], pools["picture"], pools["layer"], pools["number"]
    return [(), *[(a,) for a in m + p], *[(a, b) for a in m for b in p + s],
            *[(a, b, c) for a in m for b in s + p for c in n]]


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Abandon a call after `seconds` (SIGALRM; the kernel runs cells in its main thread)."""
    def stop(signum: int, frame: Any) -> None:
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def call_outputs(namespace: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(description, value): every callable, and every result of calling one with plausible arguments."""
    pools = argument_pools(namespace)
    outputs: list[tuple[str, Any]] = []
    for name, fn in package_callables(namespace):
        outputs.append((name, fn))
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):
            continue
        for args in argument_tuples(pools):
            try:
                signature.bind(*args)
            except TypeError:
                continue
            try:
                with time_limit(CALL_SECONDS), contextlib.redirect_stdout(io.StringIO()), \
                        contextlib.redirect_stderr(io.StringIO()):
                    result = fn(*args)
            except BaseException:  # noqa: BLE001 - a call that fails is no answer key
                continue
            outputs.extend(expand(f"{name}({', '.join(short(a) for a in args)})", result, depth=2))
    return outputs


def short(value: Any) -> str:
    """A short name for an argument."""
    if isinstance(value, np.ndarray):
        return f"array{value.shape}"
    return repr(value) if isinstance(value, (str, int)) else type(value).__name__


def expand(description: str, value: Any, depth: int) -> Iterator[tuple[str, Any]]:
    """The value, and (depth levels down) its public attributes, dict values and first sequence elements."""
    yield description, value
    if depth == 0:
        return
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        children = [(f".{f.name}", getattr(value, f.name)) for f in dataclasses.fields(value)]
    elif isinstance(value, Mapping):
        children = [(f"[{k!r}]", v) for k, v in list(value.items())[:16]]
    elif isinstance(value, (list, tuple)):
        children = [(f"[{i}]", v) for i, v in enumerate(value[:4])]
    else:
        children = [(f".{k}", v) for k, v in vars(value).items() if not k.startswith("_")] \
            if hasattr(value, "__dict__") and not isinstance(value, (type, types.ModuleType)) \
            and not callable(value) else []
    for suffix, child in children:
        yield from expand(description + suffix, child, depth - 1)


def same_form(value: Any, want: Any) -> bool:
    """Whether a candidate could stand for the answer `want`: same kind, keys, shape or type."""
    if isinstance(want, types.FunctionType):
        return callable(value) and not isinstance(value, type)
    if isinstance(want, Mapping):
        return isinstance(value, Mapping) and set(value) == set(want)
    if isinstance(want, np.ndarray):
        return isinstance(value, np.ndarray) and value.shape == want.shape
    if isinstance(want, (int, float, np.integer, np.floating)) and not isinstance(want, bool):
        return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    return type(value) is type(want)


def passes(test: str, namespace: dict[str, Any]) -> bool:
    """Whether the assignment's test cell passes in this namespace (its output hidden)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            exec(test, namespace)  # noqa: S102 - the course's own test cell
    except BaseException:  # noqa: BLE001 - a failed test, whatever it raised
        return False
    return True


def attempt(names: list[str], solution: str, test: str, namespace: dict[str, Any]) -> None:
    """Set each answer variable to a package output that passes the test cell, else to one of the right form."""
    outputs = namespace.get("_KEY_OUTPUTS")
    if outputs is None:
        outputs = namespace["_KEY_OUTPUTS"] = call_outputs(namespace)
    solved = namespace.setdefault("_KEY_SOLVED", {})  # the instructor's earlier answers, which later ones use
    scratch = {**namespace, **solved}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(solution, scratch)  # noqa: S102 - the instructor's answer, only to learn each answer's form
    solved.update({k: v for k, v in scratch.items() if k not in namespace or namespace[k] is not v})
    report = namespace.setdefault("_KEY_REPORT", {})
    for name in names:
        fitting = [(d, v) for d, v in outputs if same_form(v, scratch[name])]
        key = next(((d, v) for d, v in fitting if passes(test, {**scratch, name: v})), None)
        chosen = key or (fitting[0] if fitting else (None, None))
        namespace[name] = chosen[1]
        report[name] = {"candidates": len(outputs), "of_the_right_form": len(fitting),
                        "passed_the_tests": key[0] if key else None, "submitted": chosen[0]}
    print({name: report[name] for name in names})
