"""How alike two maps are: Spearman rank correlation and SSIM, in numpy/OpenCV only.

Both are written here (not imported from scipy/scikit-image) so the metrics add no
runtime dependency; the tests compare them with scipy/scikit-image where installed.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import ConvVizError

SSIM_K1 = 0.01  # Wang et al. (2004) stabilising constants
SSIM_K2 = 0.03


def _finite_flat(values: np.ndarray, what: str) -> np.ndarray:
    """The values as a flat float64 vector, refusing NaN/inf (they have no rank)."""
    x = np.asarray(values, np.float64).ravel()
    if not np.all(np.isfinite(x)):
        raise ConvVizError(f"{what} contains NaN or infinite values; they cannot be ranked or compared.")
    return x


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of the flattened values, ties sharing their average rank (as Spearman needs)."""
    x = _finite_flat(values, "the map")
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    counts = np.diff(np.r_[starts, x.size])
    group_rank = starts + (counts + 1) / 2.0  # mean of ranks start+1 .. start+count
    ranks = np.empty_like(x)
    ranks[order] = np.repeat(group_rank, counts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two same-shape maps; 0.0 when either is constant (no ranking)."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ConvVizError(f"spearman() needs maps of one shape; got {a.shape} and {b.shape}.")
    ra = average_ranks(a)
    rb = average_ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denom = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    if denom <= 0.0:
        return 0.0
    return float(np.clip((ra * rb).sum() / denom, -1.0, 1.0))


def _gaussian(x: np.ndarray, radius: int, sigma: float) -> np.ndarray:
    """Gaussian-weighted local mean with a (2r+1)^2 window and mirrored borders."""
    k = 2 * radius + 1
    return cv2.GaussianBlur(x, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def _ssim_terms(mx: np.ndarray, my: np.ndarray, vx: np.ndarray, vy: np.ndarray, cxy: np.ndarray,
                data_range: float) -> np.ndarray:
    """SSIM from local means, variances and covariance (Wang et al. eq. 13)."""
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0, sigma: float = 1.5) -> float:
    """Mean structural similarity of two 2-D maps (Gaussian window, sigma 1.5, as Wang et al. 2004).

    Matches scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=...)``: local statistics in an 11x11 Gaussian window,
    mean over pixels at least half a window from the border. Maps smaller than the window use a
    smaller window; a map of side < 3 uses global statistics. Heatmaps in [0, 1] take data_range=1.
    """
    x = _finite_flat(a, "the first map").reshape(np.shape(a))
    y = _finite_flat(b, "the second map").reshape(np.shape(b))
    if x.shape != y.shape or x.ndim != 2:
        raise ConvVizError(f"ssim() needs two 2-D maps of one shape; got {x.shape} and {y.shape}.")
    if data_range <= 0 or sigma <= 0:
        raise ConvVizError(f"ssim() needs data_range > 0 and sigma > 0; got {data_range}, {sigma}.")
    radius = min(int(3.5 * sigma + 0.5), (min(x.shape) - 1) // 2)
    if radius < 1:
        cov = float(((x - x.mean()) * (y - y.mean())).mean())
        return float(_ssim_terms(x.mean(), y.mean(), x.var(), y.var(), cov, data_range))
    mx, my = _gaussian(x, radius, sigma), _gaussian(y, radius, sigma)
    vx = _gaussian(x * x, radius, sigma) - mx * mx
    vy = _gaussian(y * y, radius, sigma) - my * my
    cxy = _gaussian(x * y, radius, sigma) - mx * my
    s = _ssim_terms(mx, my, vx, vy, cxy, data_range)
    return float(s[radius:-radius, radius:-radius].mean())
