"""numpy -> pictures: activation and filter grids, colour maps, overlays and PNG bytes."""

from .grids import activation_grid, channel_image, filter_grid, normalize_channels, tile
from .overlay import heatmap_image, overlay, to_png, upscale

__all__ = [
    "activation_grid", "channel_image", "filter_grid", "heatmap_image", "normalize_channels",
    "overlay", "tile", "to_png", "upscale",
]
