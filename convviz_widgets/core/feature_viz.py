"""Regularised filter patterns that look like what a unit sees (Olah et al., "Feature Visualization").

Three changes to the book's plain ascent, each a small piece:
- parametrisation: the picture lives in a decorrelated space — a Fourier spectrum scaled by 1/f
  (so low frequencies move first) and a colour basis that decorrelates RGB — mapped to pixels
  through a sigmoid;
- transformation robustness: every step sees a randomly jittered, scaled and rotated copy;
- optimiser: Adam on the spectrum.
All filters still run as one batch in one compiled step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from keras import ops

from ..errors import ConvVizError
from . import backend as bk
from . import checks
from .batching import Progress, pad_batch, report
from .filters import compiled

# Square root of ImageNet's RGB colour covariance (a measured fact), columns scaled to unit max norm.
_COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
_COLOR_SQRT /= np.max(np.linalg.norm(_COLOR_SQRT, axis=0))


@dataclass(frozen=True)
class Regularization:
    """Settings of the regularised mode (the Distill article's recipe, its step doubled for 40-step runs)."""

    learning_rate: float = 0.1  # twice the article's 0.05, which is meant for hundreds of steps, not 40
    jitter: int = 8  # random translation, pixels (at 128 px; scaled with the picture size)
    scale: float = 0.1  # random zoom in [1 - scale, 1 + scale]
    rotation: float = 10.0  # random rotation in [-rotation, +rotation] degrees
    decay_power: float = 1.0  # spectrum scaled by 1 / frequency ** decay_power
    init_std: float = 0.01  # spread of the initial spectrum

    def __post_init__(self) -> None:
        """Every setting within its bound (core/checks.py), before any picture is made."""
        checks.LEARNING_RATE.check(checks.positive_number(self.learning_rate, "learning_rate"), "learning_rate")
        checks.bounded(self.jitter, "jitter", checks.JITTER)
        checks.real(self.scale, "scale", checks.SCALE)
        checks.real(self.rotation, "rotation", checks.ROTATION)
        checks.real(self.decay_power, "decay_power", checks.DECAY_POWER)
        checks.INIT_STD.check(checks.positive_number(self.init_std, "init_std"), "init_std")


def _spectrum_scale(size: int, decay_power: float) -> np.ndarray:
    """1/f weights of the real-FFT frequencies of a size x size picture."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    freqs = np.sqrt(fx * fx + fy * fy)
    return (size / np.maximum(freqs, 1.0 / size) ** decay_power).astype(np.float32)


def inverse_dft_tables(size: int) -> tuple[np.ndarray, ...]:
    """Real matrices of the 2-D inverse real DFT of a size x size picture: (cos_k, sin_k, cos_l, sin_l).

    For a half spectrum X (size, size // 2 + 1) the picture is
    Re(A X B) = (Ac Xr - As Xi) Bc - (Ac Xi + As Xr) Bs, with A[a, k] = e^{2 pi i a k / s} / s along the
    full axis and B[l, b] = c_l e^{2 pi i l b / s} / s along the half axis (c_l = 2 for the bins whose
    mirror image is not stored, 1 for the mean and the Nyquist bin, whose imaginary parts drop out as in
    `numpy.fft.irfft2`). Six matrix products: exact, differentiable on every backend, and no FFT op needed.
    """
    half = size // 2 + 1
    a = np.arange(size)
    full = 2.0 * np.pi * np.outer(a, a) / size  # (a, k)
    weight = np.full(half, 2.0)
    weight[0] = 1.0
    if size % 2 == 0:
        weight[-1] = 1.0
    part = 2.0 * np.pi * np.outer(np.arange(half), a) / size  # (l, b)
    tables = (np.cos(full) / size, np.sin(full) / size,
              weight[:, None] * np.cos(part) / size, weight[:, None] * np.sin(part) / size)
    return tuple(t.astype(np.float32) for t in tables)


def make_pixels(size: int, reg: Regularization) -> Callable[[Any], Any]:
    """Return f(spectrum params (n, 3, s, s//2+1, 2)) -> pixels (n, s, s, 3) in 0..255 (keras.ops)."""
    scale = ops.convert_to_tensor(_spectrum_scale(size, reg.decay_power))
    cos_k, sin_k, cos_l, sin_l = (ops.convert_to_tensor(t) for t in inverse_dft_tables(size))
    colour = ops.convert_to_tensor(_COLOR_SQRT.T / 4.0)  # the image's 1/4 folded into the colour basis

    def pixels(params: Any) -> Any:
        real, imag = params[..., 0] * scale, params[..., 1] * scale  # (n, 3, s, s//2+1)
        rows_real = ops.matmul(cos_k, real) - ops.matmul(sin_k, imag)  # inverse DFT along the full axis
        rows_imag = ops.matmul(cos_k, imag) + ops.matmul(sin_k, real)
        image = ops.matmul(rows_real, cos_l) - ops.matmul(rows_imag, sin_l)  # (n, 3, s, s): real along the half
        image = ops.matmul(ops.transpose(image, (0, 2, 3, 1)), colour)
        return ops.sigmoid(image) * 255.0

    return pixels


def init_params(n: int, size: int, reg: Regularization, seed: int) -> np.ndarray:
    """A small random spectrum per filter (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 3, size, size // 2 + 1, 2)) * reg.init_std).astype(np.float32)


def random_transforms(filters: Sequence[int], size: int, reg: Regularization, seed: int, step: int) -> np.ndarray:
    """Per-image jitter + scale + rotation about the centre, as affine transform rows (n, 8) float32.

    Drawn in numpy from (seed, step) and each filter's index (row f of one table), so every backend draws
    the same numbers and a filter's transforms do not depend on which filters share its batch.
    """
    rows = np.asarray(filters, np.int64)
    table = np.random.default_rng((int(seed), int(step))).random((int(rows.max(initial=0)) + 1, 4))
    u = table[rows] * 2.0 - 1.0  # uniform in [-1, 1)
    jitter = reg.jitter * size / 128.0
    tx, ty = u[:, 0] * jitter, u[:, 1] * jitter
    zoom = 1.0 + u[:, 2] * reg.scale
    theta = u[:, 3] * reg.rotation * np.pi / 180.0
    cos, sin = np.cos(theta) / zoom, np.sin(theta) / zoom
    c = (size - 1) / 2.0
    # Output pixel p maps to input M (p - c - t) + c, with M the inverse rotation/zoom.
    a2 = c - cos * (c + tx) - sin * (c + ty)
    b2 = c + sin * (c + tx) - cos * (c + ty)
    zeros = np.zeros_like(cos)
    return np.stack([cos, sin, a2, -sin, cos, b2, zeros, zeros], axis=1).astype(np.float32)


def transform(images: Any, transforms: Any) -> Any:
    """Apply per-image affine transforms (n, 8) to images (n, h, w, C): bilinear, reflected borders.

    Output pixel (x, y) reads the input at (a0 x + a1 y + a2, b0 x + b1 y + b2) (the rows of
    `random_transforms`, as `keras.ops.image.affine_transform` reads them) from its four neighbours, each
    index reflected into the picture (d c b a | a b c d | d c b a). Written as four row gathers, its
    gradient is the exact adjoint of the sampling on every backend (TensorFlow's own projective-transform
    op back-propagates by applying the inverse transform instead, an approximation the other backends
    do not share).
    """
    n, h, w, c = (int(d) for d in images.shape)
    grid_y, grid_x = (ops.convert_to_tensor(g) for g in np.meshgrid(np.arange(h, dtype=np.float32),
                                                                     np.arange(w, dtype=np.float32), indexing="ij"))
    t = ops.reshape(ops.cast(transforms, "float32")[:, :6], (n, 6, 1, 1))
    src_x = t[:, 0] * grid_x + t[:, 1] * grid_y + t[:, 2]  # (n, h, w)
    src_y = t[:, 3] * grid_x + t[:, 4] * grid_y + t[:, 5]
    x0, y0 = ops.floor(src_x), ops.floor(src_y)
    fx, fy = ops.expand_dims(src_x - x0, -1), ops.expand_dims(src_y - y0, -1)
    base = ops.reshape(ops.arange(n, dtype="float32") * float(h * w), (n, 1, 1))
    rows = ops.reshape(images, (n * h * w, 1, c))  # 3-D: PyTorch gathers it with index_select (a fast backward)

    def pick(y: Any, x: Any) -> Any:
        index = base + _reflect(y, h) * float(w) + _reflect(x, w)
        return ops.reshape(ops.take(rows, ops.reshape(ops.cast(index, "int32"), (-1,)), axis=0), (-1, c))

    x1, y1 = x0 + 1.0, y0 + 1.0
    top = pick(y0, x0) * ops.reshape(1.0 - fx, (-1, 1)) + pick(y0, x1) * ops.reshape(fx, (-1, 1))
    bottom = pick(y1, x0) * ops.reshape(1.0 - fx, (-1, 1)) + pick(y1, x1) * ops.reshape(fx, (-1, 1))
    out = top * ops.reshape(1.0 - fy, (-1, 1)) + bottom * ops.reshape(fy, (-1, 1))
    return ops.reshape(out, (n, h, w, c))


def _reflect(index: Any, length: int) -> Any:
    """Whole-number positions (as floats) folded into 0..length-1 by reflection about the picture's edges."""
    period = 2.0 * length
    index = index - period * ops.floor(index / period)
    return ops.where(index >= length, period - 1.0 - index, index)


def check_size(size: int) -> None:
    """The decorrelated parametrisation needs a picture of at least 16 pixels."""
    if size < 16:
        raise ConvVizError(f"The regularised mode needs size >= 16; got {size}.")


def make_step(objective: Callable, count: int, size: int, reg: Regularization,
              variables: Sequence[Any] = ()) -> tuple[Callable, Callable]:
    """Compile one Adam step on the spectra of `count` filters, and the read-out of their pictures.

    `variables`: every Keras variable the objective reads (the model's weights). The seed, step number
    and transforms are inputs, so the same compiled step serves every call. Returns (step, measure):
    step(params, m, v, t, filters, moves) -> (params, m, v, activation) with t the step number (float32)
    and moves the (count, 8) transforms; measure(params, filters) -> (pixels, activation).
    """
    pixels = make_pixels(size, reg)
    lr = float(reg.learning_rate)

    def loss(params: Any, filters: Any, moves: Any) -> tuple[Any, Any]:
        gain, act = objective(transform(pixels(params), moves), filters)
        return -ops.sum(gain), act

    grad = bk.value_and_grad(loss)

    def step(params: Any, m: Any, v: Any, t: Any, filters: Any, moves: Any) -> tuple:
        _, act, g = grad(params, filters, moves)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        t1 = t + 1.0
        update = (m / (1.0 - ops.power(0.9, t1))) / (ops.sqrt(v / (1.0 - ops.power(0.999, t1))) + 1e-8)
        return params - lr * update, m, v, act

    def measure(params: Any, filters: Any) -> tuple:
        images = pixels(params)
        return images, objective(images, filters)[1]

    return compiled(step, variables), compiled(measure, variables)


def run(step: Callable, measure: Callable, filters: Sequence[int], size: int, steps: int, seed: int,
        reg: Regularization, progress: Progress | None, padded: int | None = None,
        init: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimise all filters at once with make_step's functions; returns (uint8 pictures, start, final activation).

    `padded` is the batch the functions were compiled for (>= the number of filters); the extra
    pictures repeat the first and their results are dropped. `init`: the filters' starting spectra
    (default `init_params`); a caller splitting a request into chunks passes each chunk its slice of
    one draw, so chunks do not change the pictures.
    """
    check_size(size)
    n = len(filters)
    padded = max(n, int(padded or n))
    f = ops.convert_to_tensor(pad_batch(np.asarray(filters, np.int32), padded))
    start_params = init_params(n, size, reg, seed) if init is None else np.asarray(init, np.float32)
    params = ops.convert_to_tensor(pad_batch(start_params, padded))
    m = ops.zeros_like(params)
    v = ops.zeros_like(params)
    start = bk.to_numpy(measure(params, f)[1])[:n]
    for i in range(steps):
        moves = pad_batch(random_transforms(filters, size, reg, seed, i), padded)  # padding repeats the first
        params, m, v, act = step(params, m, v, np.float32(i), f, moves)
        if progress is not None:
            bk.to_numpy(act)  # the step has run: progress tells the truth on asynchronous backends
        report(progress, i + 1, steps, "Filter patterns", "steps")
    final_pixels, final = measure(params, f)
    images = bk.to_numpy(final_pixels)[:n].round().clip(0, 255).astype(np.uint8)
    return images, start, bk.to_numpy(final)[:n]
