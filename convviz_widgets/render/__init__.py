"""numpy -> pictures: activation and filter grids, colour maps, overlays, picture sizes and PNG bytes.

Every pixel helper lives here, shared by the panel (``convviz_widgets.widgets``) and the report.
"""

from .cards import map_pictures, marked_thumbnail, thumbnail_grid
from .filters import filter_picture, labelled_tiles, shown_patterns
from .grids import activation_grid, activation_picture, channel_image, filter_grid, normalize_channels, tile
from .layout import (
    DISPLAY_MAX_SIDE,
    FIGURE_LIMIT,
    FIGURE_SIDE,
    GRID_PIXELS,
    GRID_WIDTH,
    HEADER_SIDE,
    at_side,
    block_mean,
    enlarge,
    enlarge_figure,
    fit,
    shrink,
    shrink_factor,
    side_by_side,
    slug,
)
from .overlay import heatmap_image, heatmap_picture, noted, overlay, to_png, upscale

__all__ = [
    "DISPLAY_MAX_SIDE", "FIGURE_LIMIT", "FIGURE_SIDE", "GRID_PIXELS", "GRID_WIDTH", "HEADER_SIDE",
    "activation_grid", "activation_picture", "at_side", "block_mean", "channel_image", "enlarge", "enlarge_figure",
    "filter_grid", "filter_picture", "fit", "heatmap_image", "heatmap_picture", "labelled_tiles", "map_pictures",
    "marked_thumbnail", "normalize_channels", "noted", "overlay", "shown_patterns", "shrink", "shrink_factor",
    "side_by_side", "slug", "thumbnail_grid", "tile", "to_png", "upscale",
]
