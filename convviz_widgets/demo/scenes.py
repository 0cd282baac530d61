"""Procedural shape scenes: the data the embedded demo convnet is trained and judged on.

Every scene is drawn with OpenCV from a seeded ``numpy.random.Generator``, so the
same arguments always give the same pixels.  A scene is a textured, noisy
background with a little clutter (thin lines, small irregular blobs) and one or
two clearly visible shapes, each with an exact boolean mask for localisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
IMAGE_SIZE = 96
MIN_SIZE = 32

_SHIFT = 4  # sub-pixel bits for cv2 polygon drawing
_SCALE = 1 << _SHIFT


@dataclass(frozen=True)
class Scene:
    """One rendered scene: RGB pixels plus the class and exact mask of each shape."""

    image: np.ndarray
    labels: list[int]
    masks: list[np.ndarray]


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


# -------------------------------------------------------------------------- render


def _render(rng: np.random.Generator, labels: Sequence[int], size: int, difficulty: float) -> Scene:
    """Draw background, clutter and the given shapes; masks are the un-anti-aliased fills."""
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
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(2 + 6 * difficulty)
    image = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return Scene(image=image, labels=[int(v) for v in labels], masks=masks)


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
) -> Scene:
    """Render a deterministic scene of 1 or 2 different shapes; ``label`` fixes the class(es).

    ``difficulty`` (0 = easy, 1 = the standard look) scales clutter, noise and how
    small shapes may get; it exists so training can follow an easy-to-hard curriculum.
    """
    if objects not in (1, 2):
        raise ValueError(f"objects must be 1 or 2, got {objects!r}")
    size = IMAGE_SIZE if size is None else size
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ValueError(f"size must be an int >= {MIN_SIZE}, got {size!r}")
    if not 0.0 <= difficulty <= 1.5:
        raise ValueError(f"difficulty must be within 0..1.5, got {difficulty!r}")
    rng = np.random.default_rng(seed)
    labels = _resolve_labels(label, objects, rng)
    return _render(rng, labels, int(size), float(difficulty))


def make_batch(
    first_seed: int,
    n: int,
    *,
    difficulty: float | tuple[float, float] = 1.0,
    two_object_share: float = 0.0,
    size: int | None = None,
    grid: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render ``n`` scenes from seeds ``first_seed..first_seed+n-1`` for training.

    Returns uint8 images (n, H, W, 3); float32 targets (n, classes), one-hot for
    single shapes and 0.5/0.5 for two-shape scenes; and float16 coverage
    (n, grid, grid, classes): the share of each grid cell covered by each class's
    shape (``grid`` defaults to size // 8, the demo model's Grad-CAM grid).  A
    ``(lo, hi)`` difficulty draws a per-scene difficulty uniformly from that range.
    """
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
        shot = _render(rng, labels, size, float(level))
        images[i] = shot.image
        targets[i, labels] = 1.0 / objects
        for label, mask in zip(labels, shot.masks):
            coverage[i, :, :, label] = cv2.resize(mask.astype(np.float32), (grid, grid), interpolation=cv2.INTER_AREA)
    return images, targets, coverage
