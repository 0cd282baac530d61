"""Faithfulness metrics: should you believe a heatmap? Measured, not assumed.

- Localisation: :func:`pointing_game` (Zhang et al. 2016, 15 px tolerance) and :func:`energy`
  (share of heatmap mass on the object), over a set with :func:`pointing_accuracy`.
- Faithfulness to the model: :func:`deletion_curve` (deletion and insertion, Petsiuk et al. 2018),
  compared with a seeded random pixel order.
- Sanity: :func:`randomization_check`, cascading model randomisation (Adebayo et al. 2018) on a
  copy of the model, with :func:`spearman` rank correlation and :func:`ssim`; :func:`sanity_check` runs one
  stage on a cached, seeded copy (the panel's check).

Every function takes an :class:`~convviz_widgets.Inspector` (any Keras model) and heatmaps as
CAMs or 2-D arrays; ``evaluate`` runs them over sets of targets.
"""

from .deletion import DeletionCurve, baseline_image, deletion_curve, pixel_order
from .evaluate import (
    DeletionSummary,
    LocalizationSummary,
    StageSummary,
    Target,
    compute_cams,
    deletion_summary,
    format_table,
    localization_summary,
    scene_targets,
    stage_summaries,
)
from .localization import TOLERANCE, PointingResult, centre_prior, energy, pointing_accuracy, pointing_game
from .sanity import (
    MAX_COPIES,
    SANITY_SEED,
    Sanity,
    SanityStage,
    cascade_layers,
    class_map,
    compare_cams,
    default_depth,
    model_copy,
    randomization_check,
    randomization_checks,
    randomized_copy,
    randomized_inspector,
    sanity_check,
    weighted_layers,
)
from .similarity import average_ranks, spearman, ssim

__all__ = [
    "TOLERANCE", "compare_cams", "randomized_copy",
    "MAX_COPIES", "SANITY_SEED", "Sanity", "class_map", "default_depth", "randomized_inspector", "sanity_check",
    "DeletionCurve", "DeletionSummary", "LocalizationSummary", "PointingResult", "SanityStage", "StageSummary",
    "Target", "average_ranks", "baseline_image", "cascade_layers", "centre_prior", "compute_cams",
    "deletion_curve", "deletion_summary", "energy", "format_table", "localization_summary", "model_copy",
    "pixel_order", "pointing_accuracy", "pointing_game", "randomization_check", "randomization_checks",
    "scene_targets", "spearman", "ssim", "stage_summaries", "weighted_layers",
]
