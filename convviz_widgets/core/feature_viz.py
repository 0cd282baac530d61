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

import numpy as np
import tensorflow as tf

from ..errors import Cancelled, ConvVizError
from . import checks
from .filters import pad_batch

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


def make_pixels(size: int, reg: Regularization) -> Callable[[tf.Tensor], tf.Tensor]:
    """Return f(spectrum params (n, 3, s, s//2+1, 2)) -> pixels (n, s, s, 3) in 0..255."""
    scale = tf.constant(_spectrum_scale(size, reg.decay_power))
    colour = tf.constant(_COLOR_SQRT.T)

    def pixels(params: tf.Tensor) -> tf.Tensor:
        spectrum = tf.complex(params[..., 0] * scale, params[..., 1] * scale)
        image = tf.signal.irfft2d(spectrum, fft_length=[size, size]) / 4.0  # (n, 3, s, s)
        image = tf.transpose(image, [0, 2, 3, 1]) @ colour
        return tf.sigmoid(image) * 255.0

    return pixels


def init_params(n: int, size: int, reg: Regularization, seed: int) -> np.ndarray:
    """A small random spectrum per filter (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 3, size, size // 2 + 1, 2)) * reg.init_std).astype(np.float32)


def random_transforms(n: int, size: int, reg: Regularization, seed: tf.Tensor,
                      rows: tf.Tensor | None = None) -> tf.Tensor:
    """Per-image jitter + scale + rotation about the centre, as projective transform rows (n, 8).

    With `rows` (e.g. the filter indices) image i gets row `rows[i]` of one seeded table, so a
    filter's transforms do not depend on which other filters share its batch.
    """
    if rows is None:
        u = tf.random.stateless_uniform((n, 4), seed=seed, minval=-1.0, maxval=1.0)
    else:
        rows = tf.cast(rows, tf.int32)
        table = tf.random.stateless_uniform(tf.stack([tf.reduce_max(rows) + 1, 4]), seed=seed,
                                            minval=-1.0, maxval=1.0)
        u = tf.gather(table, rows)
    jitter = reg.jitter * size / 128.0
    tx, ty = u[:, 0] * jitter, u[:, 1] * jitter
    zoom = 1.0 + u[:, 2] * reg.scale
    theta = u[:, 3] * reg.rotation * np.pi / 180.0
    cos, sin = tf.cos(theta) / zoom, tf.sin(theta) / zoom
    c = (size - 1) / 2.0
    # Output pixel p maps to input M (p - c - t) + c, with M the inverse rotation/zoom.
    a2 = c - cos * (c + tx) - sin * (c + ty)
    b2 = c + sin * (c + tx) - cos * (c + ty)
    zeros = tf.zeros_like(cos)
    return tf.stack([cos, sin, a2, -sin, cos, b2, zeros, zeros], axis=1)


def transform(images: tf.Tensor, transforms: tf.Tensor) -> tf.Tensor:
    """Apply per-image projective transforms (bilinear, reflected borders; differentiable)."""
    size = tf.shape(images)[1:3]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=size, interpolation="BILINEAR",
        fill_mode="REFLECT", fill_value=0.0)


def check_size(size: int) -> None:
    """The decorrelated parametrisation needs a picture of at least 16 pixels."""
    if size < 16:
        raise ConvVizError(f"The regularised mode needs size >= 16; got {size}.")


def make_step(objective: Callable, count: int, size: int, reg: Regularization) -> tuple[Callable, Callable]:
    """Compile one Adam step on the spectra of `count` filters, and the read-out of their pictures.

    Traced once per (count, size, settings); the seed, step number and the number of real
    pictures (the rest is padding) are tensors, so the same compiled step serves every call.
    Returns (step, measure): step(params, m, v, t, filters, seed, real) -> (params, m, v,
    activation); measure(params, filters) -> (pixels, activation).
    """
    pixels = make_pixels(size, reg)
    lr = tf.constant(reg.learning_rate, tf.float32)
    params_spec = tf.TensorSpec([count, 3, size, size // 2 + 1, 2], tf.float32)
    filters_spec = tf.TensorSpec([count], tf.int32)
    scalar = tf.TensorSpec([], tf.int32)

    def step(params: tf.Tensor, m: tf.Tensor, v: tf.Tensor, t: tf.Tensor, filters: tf.Tensor,
             seed: tf.Tensor, real: tf.Tensor) -> tuple:
        # The real pictures draw exactly the transforms an unpadded batch would; padding reuses the first.
        moves = random_transforms(real, size, reg, tf.stack([seed, t]), rows=filters[:real])
        moves = tf.concat([moves, tf.tile(moves[:1], tf.stack([count - real, 1]))], axis=0)
        with tf.GradientTape() as tape:
            tape.watch(params)
            img = transform(pixels(params), moves)
            gain, act = objective(img, filters)
            loss = -tf.reduce_sum(gain)
        g = tape.gradient(loss, params)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        tf_ = tf.cast(t, tf.float32) + 1.0
        update = (m / (1.0 - 0.9**tf_)) / (tf.sqrt(v / (1.0 - 0.999**tf_)) + 1e-8)
        return params - lr * update, m, v, act

    def measure(params: tf.Tensor, filters: tf.Tensor) -> tuple:
        images = pixels(params)
        return images, objective(images, filters)[1]

    return (tf.function(step).get_concrete_function(params_spec, params_spec, params_spec, scalar, filters_spec,
                                                    scalar, scalar),
            tf.function(measure).get_concrete_function(params_spec, filters_spec))


def run(step: Callable, measure: Callable, filters: Sequence[int], size: int, steps: int, seed: int,
        reg: Regularization, progress: Callable[[int, int], object] | None, padded: int | None = None,
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
    f = tf.constant(pad_batch(np.asarray(filters, np.int32), padded))
    seed_t, real = tf.constant(seed, tf.int32), tf.constant(n, tf.int32)
    start_params = init_params(n, size, reg, seed) if init is None else np.asarray(init, np.float32)
    params = tf.constant(pad_batch(start_params, padded))
    m = tf.zeros_like(params)
    v = tf.zeros_like(params)
    start = np.asarray(measure(params, f)[1])[:n]
    for i in range(steps):
        params, m, v, _ = step(params, m, v, tf.constant(i, tf.int32), f, seed_t, real)
        if progress is not None and progress(i + 1, steps) is False:
            raise Cancelled(f"Filter patterns cancelled after {i + 1} of {steps} steps.")
    final_pixels, final = measure(params, f)
    images = np.asarray(final_pixels)[:n].round().clip(0, 255).astype(np.uint8)
    return images, start, np.asarray(final)[:n]
