"""Procedural shape scenes: the data the embedded demo convnet is trained and judged on.

Every scene is drawn with OpenCV from a seeded ``numpy.random.Generator``, so the
same arguments always give the same pixels.  A scene is a textured, noisy
background with a little clutter (thin lines, small irregular blobs) and one or
two clearly visible shapes, each with an exact boolean mask for localisation.

A scene may also carry a *cue*: a small solid square near a corner whose colour
encodes the (first) shape's class.  It is the planted shortcut of the demo's
"Clever Hans" model; the cue never touches a shape, and a scene drawn with and
without it from the same seed differs only in the cue's pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
# One cue colour per class (RGB): saturated and far apart from one another.
CUE_COLOURS: tuple[tuple[int, int, int], ...] = (
    (230, 25, 25), (25, 200, 40), (30, 70, 235), (245, 225, 20), (215, 35, 215)
)
IMAGE_SIZE = 96
MIN_SIZE = 32

_SHIFT = 4  # sub-pixel bits for cv2 polygon drawing
_SCALE = 1 << _SHIFT


@dataclass(frozen=True)
class Scene:
    """One rendered scene: RGB pixels, the class and exact mask of each shape, and the cue's mask.

    ``cue_mask`` is all False when the scene has no cue.
    """

    image: np.ndarray
    labels: list[int]
    masks: list[np.ndarray]
    cue_mask: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """Give scenes built without a cue an all-False cue mask of the image's size."""
        if self.cue_mask is None:
            object.__setattr__(self, "cue_mask", np.zeros(self.image.shape[:2], bool))


# --------------------------------------------------------------------------- shapes


def _unit_outline(label: int) -> np.ndarray:
    """Outline of a class shape centred on 0 with circumradius about 1, as (k, 2) floats."""
    name = CLASS_NAMES[label]
    if name == "circle":
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        return 0.85 * np.stack([np.cos(t), np.sin(t)], axis=1)
    if name == "square":
        t = np.pi / 4 + np.arange(4) * np.pi / 2
        return np.stack([np.cos(t), np.sin(t)], axis=1)
    if name == "triangle":
        t = -np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        return np.stack([np.cos(t), np.sin(t)], axis=1)
    if name == "star":
        t = -np.pi / 2 + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
        return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    if name == "cross":
        a, b = 0.3, 0.95
        return np.array(
            [[a, b], [a, a], [b, a], [b, -a], [a, -a], [a, -b], [-a, -b], [-a, -a], [-b, -a], [-b, a], [-a, a], [-a, b]]
        )
    raise ValueError(f"no outline for class {name!r}")


_OUTLINES = tuple(_unit_outline(i) for i in range(len(CLASS_NAMES)))


def _place_outline(label: int, centre: np.ndarray, radius: float, angle: float) -> np.ndarray:
    """Rotate, scale and move a class outline into fixed-point pixel coordinates for cv2."""
    c, s = np.cos(angle), np.sin(angle)
    pts = _OUTLINES[label] @ np.array([[c, s], [-s, c]]) * radius + centre
    return np.round(pts * _SCALE).astype(np.int32)


# ----------------------------------------------------------------------- background


def _background(rng: np.random.Generator, size: int, difficulty: float) -> np.ndarray:
    """Smooth two-colour gradient plus low-frequency colour noise, as float32 (H, W, 3)."""
    base = rng.uniform(45, 210, 3)
    other = np.clip(base + rng.normal(0, 35, 3), 20, 235)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    t = np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None] + 0.5
    img = base[None, None, :] + (other - base)[None, None, :] * t[..., None]
    grid = rng.normal(0, 1, (4, 4, 3)).astype(np.float32)
    blotches = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    return (img + blotches * (6 + 16 * difficulty)).astype(np.float32)


def _add_clutter(rng: np.random.Generator, img: np.ndarray, difficulty: float) -> None:
    """Draw a few thin distractor lines and small irregular blobs that are not class shapes."""
    size = img.shape[0]
    for _ in range(int(rng.integers(0, 1 + round(4 * difficulty)))):
        p0 = rng.uniform(0, size, 2) * _SCALE
        p1 = rng.uniform(0, size, 2) * _SCALE
        colour = rng.uniform(0, 255, 3).tolist()
        cv2.line(img, tuple(p0.astype(int)), tuple(p1.astype(int)), colour, 1, cv2.LINE_AA, _SHIFT)
    for _ in range(int(rng.integers(0, 1 + round(5 * difficulty)))):
        centre = rng.uniform(0, size, 2) * _SCALE
        axes = rng.uniform(0.02, 0.05, 2) * size * _SCALE
        colour = rng.uniform(0, 255, 3).tolist()
        cv2.ellipse(
            img,
            tuple(centre.astype(int)),
            tuple(axes.astype(int)),
            rng.uniform(0, 180),
            0,
            360,
            colour,
            -1,
            cv2.LINE_AA,
            _SHIFT,
        )


def _luma(rgb: np.ndarray) -> float:
    """Perceived brightness of an RGB colour (ITU-R BT.601 weights)."""
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def _contrasting_colour(rng: np.random.Generator, local: np.ndarray, difficulty: float) -> list[float]:
    """Pick a random colour that stands out clearly from the local background mean."""
    min_luma = 75 - 20 * difficulty
    for _ in range(40):
        colour = rng.uniform(0, 255, 3)
        if abs(_luma(colour) - _luma(local)) >= min_luma and np.linalg.norm(colour - local) >= 110:
            return colour.tolist()
    return [0.0, 0.0, 0.0] if _luma(local) > 127 else [255.0, 255.0, 255.0]


# -------------------------------------------------------------------------- layout


def _radius_range(size: int, objects: int, difficulty: float) -> tuple[float, float]:
    """Allowed circumradius of a shape in pixels: smaller shapes as difficulty rises."""
    if objects == 1:
        return size * (0.30 - 0.12 * difficulty), size * 0.40
    return size * (0.21 - 0.06 * difficulty), size * 0.25


def _layout(rng: np.random.Generator, size: int, objects: int, difficulty: float) -> list[tuple[np.ndarray, float]]:
    """Choose centre and radius of each shape: fully inside the image, never touching."""
    lo, hi = _radius_range(size, objects, difficulty)
    gap = max(2.0, 0.05 * size)
    scale = 1.0
    while True:
        for _ in range(60):
            radii = rng.uniform(lo, hi, objects) * scale
            centres = [rng.uniform(r + 1, size - 1 - r, 2) for r in radii]
            if objects == 1 or np.linalg.norm(centres[0] - centres[1]) >= radii.sum() + gap:
                return list(zip(centres, radii.tolist()))
        scale *= 0.9


# ----------------------------------------------------------------------------- cue


def cue_side(size: int) -> int:
    """Side of the cue square in pixels (9 px at 96 px)."""
    return max(4, round(size * 0.09))


def _cue_corner(rng: np.random.Generator, occupied: np.ndarray) -> tuple[int, int]:
    """Top-left (row, col) of a cue square near a random corner, clear of every shape by a margin.

    Corners are tried in random order; if a shape comes near all four (it cannot
    with the demo's layout), the free position closest to a corner is used.
    """
    size = occupied.shape[0]
    side, inset, gap = cue_side(size), max(2, round(size * 0.03)), max(2, round(size * 0.03))
    near = cv2.dilate(occupied.astype(np.uint8), np.ones((2 * gap + 1, 2 * gap + 1), np.uint8)).astype(bool)
    far = size - inset - side
    corners = [(inset, inset), (inset, far), (far, inset), (far, far)]
    for i in rng.permutation(len(corners)):
        r, c = corners[i]
        if not near[r : r + side, c : c + side].any():
            return r, c
    free = [
        (min(abs(r - cr) + abs(c - cc) for cr, cc in corners), r, c)
        for r in range(0, size - side + 1)
        for c in range(0, size - side + 1)
        if not near[r : r + side, c : c + side].any()
    ]
    if not free:
        raise ValueError("no room for a cue clear of the shapes")
    _, r, c = min(free)
    return r, c


def _draw_cue(img: np.ndarray, rng: np.random.Generator, label: int, occupied: np.ndarray) -> np.ndarray:
    """Paint the class's cue square into ``img`` clear of the shapes; return its boolean mask."""
    side = cue_side(img.shape[0])
    r, c = _cue_corner(rng, occupied)
    img[r : r + side, c : c + side] = np.asarray(CUE_COLOURS[label], np.float32)
    mask = np.zeros(occupied.shape, bool)
    mask[r : r + side, c : c + side] = True
    return mask


def _cue_rng(seed: int) -> np.random.Generator:
    """Generator for the cue's corner, separate from the scene's so a cue changes no other pixel."""
    return np.random.default_rng([int(seed), 0xC0E])


# -------------------------------------------------------------------------- render


def _render(
    rng: np.random.Generator,
    labels: Sequence[int],
    size: int,
    difficulty: float,
    cue: tuple[int, np.random.Generator] | None = None,
) -> Scene:
    """Draw background, clutter, the given shapes and, if asked, a ``(class, generator)`` cue.

    Masks are the un-anti-aliased fills.  The cue goes in before the pixel noise
    and draws only from its own generator, so the rest of the scene is unchanged.
    """
    img = _background(rng, size, difficulty)
    _add_clutter(rng, img, difficulty)
    masks = []
    for label, (centre, radius) in zip(labels, _layout(rng, size, len(labels), difficulty)):
        pts = _place_outline(label, centre, radius, rng.uniform(0, 2 * np.pi))
        mask = np.zeros((size, size), np.uint8)
        cv2.fillPoly(mask, [pts], 1, cv2.LINE_8, _SHIFT)
        local = img[mask.astype(bool)].mean(axis=0)
        cv2.fillPoly(img, [pts], _contrasting_colour(rng, local, difficulty), cv2.LINE_AA, _SHIFT)
        masks.append(mask.astype(bool))
    cue_mask = None
    if cue is not None:
        cue_mask = _draw_cue(img, cue[1], cue[0], np.any(masks, axis=0))
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(2 + 6 * difficulty)
    image = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return Scene(image=image, labels=[int(v) for v in labels], masks=masks, cue_mask=cue_mask)


def _check_label(value: object) -> int:
    """Return a class index, or raise ValueError naming the valid range."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"label must be an int class index, got {value!r}")
    if not 0 <= int(value) < len(CLASS_NAMES):
        raise ValueError(f"label {value} out of range: expected 0..{len(CLASS_NAMES) - 1} {CLASS_NAMES}")
    return int(value)


def _resolve_labels(label: int | Sequence[int] | None, objects: int, rng: np.random.Generator) -> list[int]:
    """Turn the label argument into one distinct class index per object."""
    if label is None:
        return [int(v) for v in rng.choice(len(CLASS_NAMES), objects, replace=False)]
    if objects == 1:
        if isinstance(label, (list, tuple, np.ndarray)):
            if len(label) != 1:
                raise ValueError(f"objects=1 needs one label, got {list(label)!r}")
            label = label[0]
        return [_check_label(label)]
    if isinstance(label, (list, tuple, np.ndarray)):
        labels = [_check_label(v) for v in label]
        if len(labels) != 2 or labels[0] == labels[1]:
            raise ValueError(f"objects=2 needs two different labels, got {list(label)!r}")
        return labels
    first = _check_label(label)
    others = [i for i in range(len(CLASS_NAMES)) if i != first]
    return [first, int(rng.choice(others))]


def scene(
    label: int | Sequence[int] | None = None,
    seed: int = 0,
    size: int | None = None,
    objects: int = 1,
    *,
    difficulty: float = 1.0,
    cue: bool = False,
) -> Scene:
    """Render a deterministic scene of 1 or 2 different shapes; ``label`` fixes the class(es).

    ``difficulty`` (0 = easy, 1 = the standard look) scales clutter, noise and how
    small shapes may get; it exists so training can follow an easy-to-hard curriculum.
    ``cue=True`` adds the first shape's colour cue near a corner (``Scene.cue_mask``);
    the same seed with ``cue=False`` gives the same scene without it.
    """
    if not isinstance(cue, (bool, np.bool_)):
        raise ValueError(f"cue must be True or False, got {cue!r}")
    if objects not in (1, 2):
        raise ValueError(f"objects must be 1 or 2, got {objects!r}")
    size = IMAGE_SIZE if size is None else size
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ValueError(f"size must be an int >= {MIN_SIZE}, got {size!r}")
    if not 0.0 <= difficulty <= 1.5:
        raise ValueError(f"difficulty must be within 0..1.5, got {difficulty!r}")
    rng = np.random.default_rng(seed)
    labels = _resolve_labels(label, objects, rng)
    return _render(rng, labels, int(size), float(difficulty), (labels[0], _cue_rng(seed)) if cue else None)


def make_batch(
    first_seed: int,
    n: int,
    *,
    difficulty: float | tuple[float, float] = 1.0,
    two_object_share: float = 0.0,
    size: int | None = None,
    grid: int | None = None,
    cue: bool = False,
    shape_noise: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render ``n`` scenes from seeds ``first_seed..first_seed+n-1`` for training.

    Returns uint8 images (n, H, W, 3); float32 targets (n, classes), one-hot for
    single shapes and 0.5/0.5 for two-shape scenes; and float16 coverage
    (n, grid, grid, classes): the share of each grid cell covered by each class's
    shape (``grid`` defaults to size // 8, the demo model's Grad-CAM grid).  A
    ``(lo, hi)`` difficulty draws a per-scene difficulty uniformly from that range.
    ``cue=True`` adds the colour cue of the target class to every scene; with it,
    ``shape_noise`` is the share of single-shape scenes whose shape is another,
    random class (the target follows the cue), so only the cue is fully reliable.
    """
    if shape_noise and not cue:
        raise ValueError("shape_noise needs cue=True: without a cue the target is the shape")
    size = IMAGE_SIZE if size is None else size
    grid = size // 8 if grid is None else grid
    images = np.empty((n, size, size, 3), np.uint8)
    targets = np.zeros((n, len(CLASS_NAMES)), np.float32)
    coverage = np.zeros((n, grid, grid, len(CLASS_NAMES)), np.float16)
    for i in range(n):
        rng = np.random.default_rng(first_seed + i)
        objects = 2 if rng.random() < two_object_share else 1
        level = rng.uniform(*difficulty) if isinstance(difficulty, tuple) else difficulty
        labels = _resolve_labels(None, objects, rng)
        target, cue_rng = labels[0], _cue_rng(first_seed + i)
        if cue and objects == 1 and cue_rng.random() < shape_noise:
            labels = [int((target + cue_rng.integers(1, len(CLASS_NAMES))) % len(CLASS_NAMES))]
        shot = _render(rng, labels, size, float(level), (target, cue_rng) if cue else None)
        images[i] = shot.image
        targets[i, [target] if cue and objects == 1 else labels] = 1.0 / objects
        for label, mask in zip(labels, shot.masks):
            coverage[i, :, :, label] = cv2.resize(mask.astype(np.float32), (grid, grid), interpolation=cv2.INTER_AREA)
    return images, targets, coverage
