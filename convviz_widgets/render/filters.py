"""Filter-pattern pictures: each pattern enlarged under a strip with its filter index, in a grid (panel and report)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .grids import filter_grid

COLUMNS = 8
TILE_MIN = 96  # small patterns are enlarged (nearest neighbour) to at least this many pixels
LABEL_HEIGHT = 18


DEAD_GREY = 96  # a filter the ascent never made fire is shown flat, in this grey


def shown_patterns(images: np.ndarray, final_activation: np.ndarray) -> np.ndarray:
    """The patterns to show: a filter whose ascent never made it fire (final activation <= 0) is flat grey.

    Its picture would be the start noise, dressed up as a pattern; a flat tile labelled 'dead' is the truth.
    """
    images = np.array(images, copy=True)
    dead = ~(np.asarray(final_activation, np.float64) > 0.0)
    images[dead] = DEAD_GREY
    return images


def tile_label(index: int, act: float, wide: bool = True) -> str:
    """A pattern's label: '#3  0.512', '#3  dead' when it never fired, '#3' on a narrow tile."""
    if not wide:
        return f"#{index}"
    return f"#{index}  dead" if not act > 0.0 else f"#{index}  {act:.3g}"


def labelled_tiles(patterns: Any) -> np.ndarray:
    """Enlarge each pattern and put its filter index (and final activation, or 'dead') on a strip above it.

    `patterns` is a FilterPatterns (anything with .images (n, s, s, 3) uint8, .filters and .final_activation).
    """
    import cv2

    images = shown_patterns(patterns.images, patterns.final_activation)
    k = max(1, math.ceil(TILE_MIN / images.shape[1]))
    tiles = np.repeat(np.repeat(images, k, axis=1), k, axis=2)
    strips = np.zeros((len(tiles), LABEL_HEIGHT, tiles.shape[2], 3), np.uint8)
    for strip, index, act in zip(strips, patterns.filters, patterns.final_activation):
        text = tile_label(int(index), float(act), tiles.shape[2] >= 80)
        cv2.putText(strip, text, (3, LABEL_HEIGHT - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return np.concatenate([strips, tiles], axis=1)


def filter_picture(patterns: Any, columns: int = COLUMNS) -> np.ndarray:
    """The labelled patterns in a grid of at most `columns` per row: the Filters tab's and the report's picture."""
    return filter_grid(labelled_tiles(patterns), cols=min(columns, len(patterns.filters)))
