"""What a CAM explains: a target turns the explained output into one score per image.

A target reads the explained output's pre-activation values (the logits under a softmax/sigmoid head,
the raw values of a linear head): `ClassTarget(k)` is class k's logit (today's default), `RegionTarget(k)`
the sum of class k's logits over a mask of a segmentation map, `LabelTarget(k)` one label's logit of a
multi-label sigmoid head, `OutputTarget(i)` a regression output (`negate=True`: its negation, what lowers
a one-unit output), and any callable `f(outputs) -> (batch,)`
written with `keras.ops` is its own target. `plan` checks a target against the model once, before any
work; `scorer` gives the maths that runs inside the compiled CAM function (the head's maths is in `head.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from keras import ops

from ..errors import ConvVizError
from ..images import resize_map
from . import checks
from .head import chosen_scores, class_scores, head_values, region_scores

BACKGROUND_NAMES = ("background", "bg", "void", "unlabeled", "unlabelled")


class Target:
    """What score a CAM explains; see `ClassTarget`, `RegionTarget`, `LabelTarget`, `OutputTarget`."""

    def describe(self, class_names: Sequence[str]) -> str:
        """Words for what is explained, e.g. "class 3 (star)"."""
        raise NotImplementedError


def _named(kind: str, index: int | None, class_names: Sequence[str]) -> str:
    """"class 3 (star)", or the name alone when it is only the index in words."""
    if index is None:
        return f"the top {kind}"
    name = class_names[index] if 0 <= index < len(class_names) else None
    plain = name in (f"class {index}", f"label {index}")  # a default name says nothing more than the index
    return f"{kind} {index}" + (f" ({name})" if name and not plain else "")


@dataclass(frozen=True)
class ClassTarget(Target):
    """The logit of class `index` (None: the top class). On a segmentation map: `RegionTarget(index)`."""

    index: int | None = None

    def describe(self, class_names: Sequence[str]) -> str:
        """"class 3 (star)"."""
        return _named("class", self.index, class_names)


@dataclass(frozen=True)
class LabelTarget(Target):
    """One label of a multi-label (sigmoid) head: its logit."""

    index: int

    def describe(self, class_names: Sequence[str]) -> str:
        """"label 2 (cat)"."""
        return _named("label", self.index, class_names)


@dataclass(frozen=True)
class OutputTarget(Target):
    """A regression output: the raw output value (a one-unit head), or its entry `index`.

    `negate=True` (a one-unit head only) explains minus the output: where the evidence lowers it (the head
    reads one unit as (-z, z), so this is the same maths as the unit itself, with the sign turned).
    """

    index: int | None = None
    negate: bool = False

    def describe(self, class_names: Sequence[str]) -> str:
        """"the output", "output entry 2", or "the output, negated (what lowers it)"."""
        what = "the output" if self.index is None else f"output entry {self.index}"
        return f"{what}, negated (what lowers it)" if self.negate else what


@dataclass(frozen=True, eq=False)
class RegionTarget(Target):
    """Class `index` over a region of a segmentation map: the sum of its logits over `mask`.

    `mask`: (H, W) at the image's size (booleans or weights in [0, 1]; resized to the output's grid),
    or None for the pixels where the model predicts the class (argmax over classes == index).
    `index` None: the class predicted over the largest area (a class named "background" excluded).
    """

    index: int | None = None
    mask: Any = None

    def describe(self, class_names: Sequence[str]) -> str:
        """"class 1 (circle) over its predicted region" or "... over the given mask"."""
        where = "its predicted region" if self.mask is None else "the given mask"
        return f"{_named('class', self.index, class_names)} over {where}"


@dataclass(frozen=True, eq=False)
class FunctionTarget(Target):
    """A callable f(outputs) -> (batch,) of the explained output's pre-activation values, in `keras.ops`."""

    fn: Callable[[Any], Any]

    def describe(self, class_names: Sequence[str]) -> str:
        """The callable's name."""
        return f"{getattr(self.fn, '__name__', type(self.fn).__name__)}(outputs)"


@dataclass(frozen=True, eq=False)
class Scoring:
    """One image's checked target: how the compiled function scores it ("index", "region" or "function").

    `wanted`: an entry of the head's class scores ((-z, z) for one unit) or the region's class, -1 for the top
    one; `mask` (H, W) float32 at the image's size for a region given by the user.
    """

    target: Target
    mode: str
    wanted: int = -1
    mask: np.ndarray | None = None

    @property
    def key(self) -> tuple:
        """What the compiled function depends on: () for index targets (the CAM's own function), else more."""
        if self.mode == "function":
            return ("target", self.target.fn)
        return () if self.mode == "index" else ("region",)


def described(scoring: Scoring, chosen: int, class_names: Sequence[str]) -> str:
    """Words for what one CAM explained, with the class a default target resolved to."""
    target = scoring.target
    if isinstance(target, ClassTarget) and target.index is None:
        target = ClassTarget(chosen)
    elif isinstance(target, RegionTarget) and target.index is None:
        target = RegionTarget(chosen, target.mask)
    elif isinstance(target, (LabelTarget, OutputTarget)) and len(class_names) == 2 and scoring.wanted == 1:
        return target.describe([])  # a one-unit head: its (-z, z) names say nothing more
    return target.describe(class_names)


def index_target(inspector: Any, index: int) -> Target:
    """The target of entry `index` of the head's values as `Inspector.predict` lists them (the panel's pick).

    A classifier's class k (a segmentation model's: over its predicted region), a multi-label head's label k,
    a regression head's output (entry 1 of its (-z, z) reading) or its negation (entry 0).
    """
    if inspector.output_kind == "regression":
        return OutputTarget() if int(index) == 1 else OutputTarget(negate=True)
    if getattr(inspector, "multi_label", False):
        return LabelTarget(int(index))
    return ClassTarget(int(index))


def parse_target(text: str) -> Target:
    """A target from words, as the command line takes it: class[:N], label:N, output[:N], region[:N]."""
    kind, _, index = str(text).strip().lower().partition(":")
    makers = {"class": ClassTarget, "label": LabelTarget, "output": OutputTarget, "region": RegionTarget}
    usage = "class[:N], label:N, output[:N] or region[:N] (N a whole number)"
    if kind not in makers or (index and not index.isdigit()) or (kind == "label" and not index):
        raise ConvVizError(f"target {text!r} is not one of {usage}.")
    return makers[kind](int(index)) if index else makers[kind]()


def as_target(target: Any, class_index: Any) -> Any:
    """`target=` or its short form `class_index=` (one, a list per image, or None); both is an error."""
    if target is not None and class_index is not None:
        raise ConvVizError("Give either target= or class_index= (the short form of target=ClassTarget(k)), "
                           "not both.")
    if target is not None:
        return target
    if isinstance(class_index, (list, tuple, np.ndarray)):
        return [ClassTarget(c) for c in class_index]
    return None if class_index is None else ClassTarget(class_index)


def plan(inspector: Any, target: Any, rgb_hw: tuple[int, int]) -> Scoring:
    """Check one target against the model (`inspector.output_kind`, `n_classes`, `graph.head`): its Scoring.

    None is the model's default: the top class, the largest predicted region of a segmentation map, the
    output of a regression head; a model that ends in a feature map needs a callable target.
    """
    kind = inspector.output_kind
    if target is None:
        target = {"classes": ClassTarget(), "regression": OutputTarget(),
                  "segmentation": RegionTarget()}.get(kind)
        if target is None:
            raise ConvVizError(
                f"This model has no class output: it ends in a feature map {tuple(inspector.graph.head.logits.shape)}"
                " (e.g. a keras.applications base with include_top=False). Activations and filter patterns work; "
                "for Grad-CAM add a classifier head, use include_top=True, or give target=f, a function of the "
                "output that returns one score per image (keras.ops).")
    if callable(target) and not isinstance(target, Target):
        target = FunctionTarget(target)
    if isinstance(target, FunctionTarget):
        return Scoring(target, "function")
    if not isinstance(target, Target):
        raise ConvVizError(f"target must be ClassTarget(k), RegionTarget(k, mask), LabelTarget(k), OutputTarget(i) "
                           f"or a callable f(outputs) -> (batch,); got {target!r} ({type(target).__name__}).")
    if kind == "segmentation":
        return _plan_region(inspector, target, rgb_hw)
    if kind == "features":
        raise ConvVizError(f"{type(target).__name__} needs a class, label or regression output; this model ends in "
                           f"a feature map {tuple(inspector.graph.head.logits.shape)}. Give a callable target instead.")
    return _plan_vector(inspector, target)


def _entry(inspector: Any, index: int, what: str, one: bool, only: str) -> int:
    """The score column of entry `index`: a one-unit head is read as (-z, z), so its entry 0 is column 1."""
    if not one:
        return _index(inspector, index, what)
    if index != 0:
        raise ConvVizError(f"{what} {index} is out of range: {only} (0).")
    return 1


def _index(inspector: Any, index: Any, what: str) -> int:
    """A class/label/entry index that exists in the output."""
    index = checks.integer(index, what)
    if not 0 <= index < inspector.n_classes:
        raise ConvVizError(f"{what} {index} is out of range: this model's output has {inspector.n_classes} "
                           f"entries (0..{inspector.n_classes - 1}).")
    return index


def _plan_vector(inspector: Any, target: Target) -> Scoring:
    """Class, label and regression targets of an (n, units) output: one entry of the class scores."""
    head = inspector.graph.head
    if isinstance(target, RegionTarget):
        raise ConvVizError(f"RegionTarget needs a segmentation output (batch, H, W, classes); this model's output "
                           f"is {tuple(head.logits.shape)}. Use ClassTarget(k) instead.")
    if isinstance(target, ClassTarget):
        return Scoring(target, "index", -1 if target.index is None else inspector.check_class(target.index))
    one = head.units == 1  # read as (-z, z): entry 1 is the unit itself
    if isinstance(target, LabelTarget):
        if head.activation == "softmax":
            raise ConvVizError("LabelTarget is one label of a multi-label sigmoid head; this head is a softmax "
                               "(one class per image). Use ClassTarget(k).")
        index = checks.integer(target.index, "label")
        return Scoring(target, "index", _entry(inspector, index, "label", one, "this head has one label"))
    if isinstance(target, OutputTarget):
        if target.negate:
            if not one:
                raise ConvVizError(f"OutputTarget(negate=True) needs a one-unit head; this output has {head.units} "
                                   "entries. Give a callable target instead, e.g. lambda out: -out[:, i].")
            index = 0 if target.index is None else checks.integer(target.index, "output entry")
            _entry(inspector, index, "output entry", one, "this output has one entry")
            return Scoring(target, "index", 0)  # column 0 of (-z, z)
        if target.index is None:
            if not one:
                raise ConvVizError(f"This output has {head.units} entries; give OutputTarget(index) to choose one.")
            return Scoring(target, "index", 1)
        index = checks.integer(target.index, "output entry")
        return Scoring(target, "index", _entry(inspector, index, "output entry", one, "this output has one entry"))
    raise ConvVizError(f"Unknown target {target!r}.")


def _plan_region(inspector: Any, target: Target, rgb_hw: tuple[int, int]) -> Scoring:
    """A class over a region of a segmentation map (a class target is the class over its predicted region)."""
    if isinstance(target, ClassTarget):
        target = RegionTarget(target.index)
    if not isinstance(target, RegionTarget):
        raise ConvVizError(f"This model's output is a segmentation map {tuple(inspector.graph.head.logits.shape)}; "
                           f"{type(target).__name__} needs a class or regression output. Use RegionTarget(k, mask) "
                           "or a callable target.")
    wanted = -1 if target.index is None else inspector.check_class(target.index)
    return Scoring(target, "region", wanted, None if target.mask is None else _mask(target.mask, rgb_hw))


def _mask(mask: Any, hw: tuple[int, int]) -> np.ndarray:
    """A region mask as float32 (H, W) in [0, 1] at the image's size."""
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.ndim != 2 or m.dtype.kind not in "biuf":
        raise ConvVizError(f"RegionTarget's mask must be an (H, W) array of booleans or weights; got shape "
                           f"{m.shape} ({m.dtype}).")
    m = m.astype(np.float32)
    if not np.isfinite(m).all() or m.min() < 0 or m.max() > 1:
        raise ConvVizError("RegionTarget's mask must hold booleans or weights in [0, 1] (no NaN).")
    if m.max() <= 0:
        raise ConvVizError("RegionTarget's mask is empty: it selects no pixel, so there is nothing to explain.")
    if m.shape != tuple(hw):
        m = np.clip(resize_map(m, tuple(hw)), 0.0, 1.0).astype(np.float32)
    return m


def background_class(inspector: Any) -> int:
    """The index of a class named like "background" (never the default region), or -1; 0 for one unit."""
    if inspector.graph.head.units == 1:
        return 0
    names = [str(n).strip().lower() for n in inspector.class_names]
    return next((i for i, n in enumerate(names) if n in BACKGROUND_NAMES), -1)


def scorer(mode: str, activation: str, fn: Any = None, background: int = -1) -> Callable[..., tuple]:
    """Inside compiled code: f(logits, wanted[, given, use_given]) -> (class, score, head values, region or None).

    `logits` (B, ...) float32; the score (B,) is what the CAM explains; the head values (B, n) give the
    CAM's probability; the region (B, h, w) is the mask a region target summed over.
    """
    if mode == "index":
        def index(logits: Any, wanted: Any) -> tuple:
            chosen, score = chosen_scores(class_scores(logits, activation), wanted)
            return chosen, score, head_values(logits, activation), None
        return index
    if mode == "region":
        def region(logits: Any, wanted: Any, given: Any, use_given: Any) -> tuple:
            h, w = int(logits.shape[1]), int(logits.shape[2])
            if tuple(given.shape[1:3]) != (h, w):
                given = ops.image.resize(given[..., None], (h, w), interpolation="bilinear")[..., 0]
            return region_scores(class_scores(logits, activation), head_values(logits, activation), wanted,
                                 ops.cast(given, "float32"), use_given, background)
        return region

    def function(logits: Any, wanted: Any) -> tuple:
        score = call_target(fn, logits)
        return ops.cast(wanted * 0 - 1, "int32"), score, score[:, None], None
    return function


def call_target(fn: Any, outputs: Any) -> Any:
    """A callable target's scores (B,) float32, refused in words when it gives another shape."""
    try:
        score = fn(outputs)
    except ConvVizError:
        raise
    except Exception as err:  # the user's function: its failure named, with the output's shape
        raise ConvVizError(f"The target function {getattr(fn, '__name__', fn)!r} failed on the model's output "
                           f"{tuple(outputs.shape)}: {type(err).__name__}: {err}") from err
    shape = tuple(getattr(score, "shape", ()))
    if shape != (int(outputs.shape[0]),):
        raise ConvVizError(f"A target function must return one score per image, shape (batch,) = "
                           f"({int(outputs.shape[0])},); {getattr(fn, '__name__', 'it')!r} returned shape {shape}. "
                           "Reduce the other axes, e.g. keras.ops.sum(outputs[..., k], axis=(1, 2)).")
    return ops.cast(score, "float32")
