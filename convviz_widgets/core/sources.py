"""Image sources for streaming work: arrays, iterables, folders and (where TensorFlow is installed) tf.data.

Each reader yields (stream index, item); `Batches` prepares the items as the model sees them and groups
them into uint8 batches of one size, counting (with the reason) the images it cannot read.
TensorFlow is never imported here: a `tf.data.Dataset` can only exist once the user imported it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from keras import ops

from ..errors import ConvVizError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MAX_REASONS = 20  # skipped images whose reason is kept (the count has them all)


class Reader:
    """Items of an image source with their stream index; `total` is their number when known."""

    total: int | None = None

    def items(self) -> Iterator[tuple[int, Any]]:
        """(stream index, item) pairs, in stream order."""
        raise NotImplementedError


class ArrayReader(Reader):
    """An (N, H, W, C) array: each image is one item."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.total = int(array.shape[0])

    def items(self) -> Iterator[tuple[int, Any]]:
        for i in range(self.total):
            yield i, self.array[i]


class IterReader(Reader):
    """Any iterable of images (arrays, paths, PIL images, bytes)."""

    def __init__(self, iterable: Iterable) -> None:
        self.iterable = iterable
        try:
            self.total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            self.total = None

    def items(self) -> Iterator[tuple[int, Any]]:
        yield from enumerate(self.iterable)


class FolderReader(Reader):
    """Image files of a folder (and its sub-folders when recursive), in sorted path order."""

    def __init__(self, folder: Path, recursive: bool) -> None:
        pattern = "**/*" if recursive else "*"
        self.files = sorted((p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                            key=lambda p: p.relative_to(folder).as_posix())
        if not self.files:
            raise ConvVizError(
                f"The folder {folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})"
                f"{'' if recursive else '; pass recursive=True to look in its sub-folders'}."
            )
        self.total = len(self.files)

    def items(self) -> Iterator[tuple[int, Any]]:
        yield from enumerate(self.files)


class DatasetReader(Reader):
    """A tf.data.Dataset of images or (image, label) pairs, batched or not (TensorFlow is installed then)."""

    def __init__(self, dataset: Any) -> None:
        import tensorflow as tf

        self.dataset = dataset
        spec = dataset.element_spec
        image_spec = spec[0] if isinstance(spec, (tuple, list)) else spec
        if not isinstance(image_spec, tf.TensorSpec):
            raise ConvVizError(
                f"A dataset's elements must be images or (image, label) pairs; got elements {spec}. "
                "Map it to images first, e.g. dataset.map(lambda d: d['image'])."
            )
        rank = image_spec.shape.rank
        if rank not in (2, 3, 4):
            raise ConvVizError(
                f"A dataset's images must be (H, W[, C]) or batches (B, H, W, C); got shape {image_spec.shape}."
            )
        self.batched = rank == 4
        cardinality = int(dataset.cardinality())
        self.total = cardinality if cardinality >= 0 and not self.batched else None

    def items(self) -> Iterator[tuple[int, Any]]:
        import tensorflow as tf

        index = 0
        elements = iter(self.dataset)
        while True:
            try:
                element = next(elements)
            except StopIteration:
                return
            except tf.errors.OpError as err:  # the pipeline itself failed (a file it could not decode)
                raise ConvVizError(
                    f"The dataset failed after {index} images: {first_line(err)} Skip bad elements inside the "
                    "pipeline with dataset.ignore_errors(), or pass the files as a folder (bad ones are skipped)."
                ) from err
            image = element[0] if isinstance(element, (tuple, list)) else element
            array = image.numpy()
            for one in (array if self.batched else (array,)):
                yield index, one
                index += 1


def _tensorflow_types() -> tuple[Any, Any]:
    """(tf.data.Dataset, tf.Tensor) when TensorFlow is already imported, else (None, None): never imports it."""
    tf = sys.modules.get("tensorflow")
    data = getattr(tf, "data", None)
    return getattr(data, "Dataset", None), getattr(tf, "Tensor", None)


def reader(images: Any, recursive: bool) -> Reader:
    """Recognise the kind of image source, refusing what cannot be streamed."""
    if images is None:
        raise ConvVizError("images is None: pass an (N, H, W, 3) array, an iterable of images, "
                           "a tf.data.Dataset or a folder of image files.")
    if isinstance(images, (str, os.PathLike)):
        folder = Path(images)
        if not folder.is_dir():
            raise ConvVizError(
                f"{folder} is not a folder. Pass a folder of image files, or a list of image paths "
                "(a single image goes in a list: [path])."
            )
        return FolderReader(folder, recursive)
    dataset_type, tensor_type = _tensorflow_types()
    if dataset_type is not None and isinstance(images, dataset_type):
        return DatasetReader(images)
    if (tensor_type is not None and isinstance(images, tensor_type)) or ops.is_tensor(images):
        images = np.asarray(images) if tensor_type is not None and isinstance(images, tensor_type) \
            else ops.convert_to_numpy(images)
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise ConvVizError(
                f"An image array must be a stack (N, H, W, C); got shape {images.shape}. "
                "A single image goes in a list: [image]."
            )
        if images.shape[0] == 0:
            raise ConvVizError("The image array holds no images (N = 0).")
        return ArrayReader(images)
    if isinstance(images, (bytes, bytearray, dict)) or not isinstance(images, Iterable):
        raise ConvVizError(
            f"Cannot stream images from a {type(images).__name__}: pass an (N, H, W, 3) array, an iterable "
            "of images (arrays, paths, PIL images, bytes), a tf.data.Dataset or a folder of image files."
        )
    return IterReader(images)


class Batches:
    """Prepared uint8 images grouped into batches of one size (a free-size model may get several sizes).

    `inspector` is anything with `prepare(image)` and `input_size` (the Inspector's public members).
    """

    def __init__(self, inspector: Any, batch_size: int) -> None:
        self.inspector = inspector
        self.batch_size = batch_size
        self.skipped = 0
        self.reasons: list[str] = []
        self.consumed = 0

    def _prepare(self, index: int, item: Any) -> np.ndarray | None:
        """The image as the model sees it, or None (counted, with the reason) when it cannot be read."""
        try:
            rgb = self.inspector.prepare(item)
            if rgb.ndim != 3 or rgb.shape[-1] != 3:
                raise ConvVizError(f"prepared image has shape {rgb.shape}")
            return rgb
        except MemoryError:
            raise
        except Exception as err:  # noqa: BLE001 - one bad image must not stop a stream of thousands
            self.skipped += 1
            if len(self.reasons) < MAX_REASONS:
                self.reasons.append(f"image {index}: {type(err).__name__}: {first_line(err)}")
            return None

    def __call__(self, source: Reader) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (stream indices, uint8 batch) until the source ends."""
        if isinstance(source, ArrayReader) and self.ready(source.array):
            yield from self._slices(source.array)
            return
        images: list[np.ndarray] = []
        index: list[int] = []
        for i, item in source.items():
            self.consumed = i + 1
            rgb = self._prepare(i, item)
            if rgb is None:
                continue
            if images and rgb.shape != images[0].shape:
                yield np.array(index, np.int64), np.stack(images)
                images, index = [], []
            images.append(rgb)
            index.append(i)
            if len(images) == self.batch_size:
                yield np.array(index, np.int64), np.stack(images)
                images, index = [], []
        if images:
            yield np.array(index, np.int64), np.stack(images)

    def ready(self, array: np.ndarray) -> bool:
        """An array already as the model sees it (uint8 RGB at its size) needs no per-image work."""
        size = self.inspector.input_size
        return array.dtype == np.uint8 and array.shape[-1] == 3 and size is not None and array.shape[1:3] == size


    def _slices(self, array: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Batches cut straight from a ready array."""
        for start in range(0, array.shape[0], self.batch_size):
            stop = min(start + self.batch_size, array.shape[0])
            self.consumed = stop
            yield np.arange(start, stop, dtype=np.int64), np.ascontiguousarray(array[start:stop])


def first_line(err: BaseException) -> str:
    """An exception's message, first line, shortened."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return text if len(text) <= 160 else text[:157] + "..."
