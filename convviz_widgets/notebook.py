"""Helpers for the notebooks and the course: quiet TensorFlow, pictures side by side, a real ImageNet model.

Import them in a notebook's first cell (``from convviz_widgets.notebook import show``) instead of
pasting the same code into every notebook.  Matplotlib and Keras are imported only when used.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConvVizError

SHARED_MOBILENET = "mobilenet_2_5_128_tf.h5"  # ImageNet MobileNet v1, width 0.25, 128 px (Keras' file name)


def quiet_tensorflow() -> None:
    """Hide TensorFlow's Python warnings about re-traced functions (its C++ log needs TF_CPP_MIN_LOG_LEVEL).

    Only its logger's level is set: TensorFlow is not imported, so on JAX or PyTorch this changes nothing.
    """
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def show(*pictures: np.ndarray, titles: Sequence[str] = (), height: float = 2.5, width: float | None = None) -> None:
    """Show pictures (uint8 RGB or 2-D arrays) side by side without axes; `width` overrides `height`."""
    import matplotlib.pyplot as plt

    if not pictures:
        raise ValueError("show() needs at least one picture.")
    widths = [p.shape[1] / p.shape[0] for p in pictures]
    height = width / sum(widths) if width else height
    _, axes = plt.subplots(1, len(pictures), figsize=(height * sum(widths), height), squeeze=False,
                           gridspec_kw={"width_ratios": widths})
    for ax, picture, title in zip(axes[0], pictures, list(titles) + [""] * len(pictures)):
        ax.imshow(picture, cmap="viridis" if picture.ndim == 2 else None)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    plt.show()


def choose_real_model(shared: str | Path = "../../shared/data") -> tuple[Any, str]:
    """(model or None, a line saying which): the MobileNet in `shared`, else MobileNetV2 downloaded, else None.

    Notebooks run offline must never fail, so a missing file and a failed download both end in None.
    """
    import keras

    weights = Path(shared) / SHARED_MOBILENET
    if weights.is_file():
        model = keras.applications.MobileNet(alpha=0.25, input_shape=(128, 128, 3), weights=str(weights))
        return model, f"Real model: ImageNet MobileNet v1 (width 0.25, 128 px) from {Path(shared).as_posix()}."
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # hide the download progress bar
            model = keras.applications.MobileNetV2(weights="imagenet")
        return model, "Real model: ImageNet MobileNetV2 (224 px), weights from Keras' download site."
    except Exception:  # offline: nothing to download from
        return None, "Offline and no ImageNet weights here: the real-model cells below fall back or skip."


NOTEBOOKS_EXTRA = 'pip install ".[notebooks]"'  # the extra that brings scikit-image, nbclient and JupyterLab


def needs_notebooks_extra(what: str, err: ImportError) -> ConvVizError:
    """The error for an optional piece used without the notebooks extra."""
    return ConvVizError(f"{what} needs the notebooks extra ({err.name or err} is missing): {NOTEBOOKS_EXTRA} "
                        "from a checkout of convviz_widgets.")


def cat_photo() -> np.ndarray:
    """A photo of a cat (uint8 RGB, 300x451) that ships with scikit-image (the notebooks extra)."""
    try:
        from skimage import data
    except ImportError as err:
        raise needs_notebooks_extra("cat_photo() (scikit-image's photo of a cat)", err) from err
    return data.chelsea()


# ----- running the notebooks (make notebooks) -----------------------------------------------------------
IGNORE_OUTPUT = "# NBVAL_IGNORE_OUTPUT"  # a cell whose output depends on the machine; nbval does not compare it
QUIET_CELL = "quiet-import"  # tag: the set-up cell, stored without the C++ start-up log some machines print
WIDGET_CELL = "live-widget"  # tag: a cell showing a live widget, stored without output (run it to see it)


def tidy(nb: Any) -> list[str]:
    """Drop start-up logs and widget placeholders from an executed notebook; return problems left in it."""
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        if QUIET_CELL in tags:
            cell.outputs = [o for o in cell.outputs if o.get("name") != "stderr"]
        if WIDGET_CELL in tags:
            cell.outputs = []
        compared = IGNORE_OUTPUT not in cell.source
        for out in cell.outputs:
            if out.output_type == "error" and "raises-exception" not in tags:
                problems.append(f"cell {index}: {out.ename}: {out.evalue}")
            elif compared and out.get("name") == "stderr":
                problems.append(f"cell {index}: stderr in a compared cell: {out.text[:200]!r}")
    return problems


def execute(path: str | Path, timeout: int = 600) -> list[str]:
    """Run a notebook in a fresh kernel of this environment (in its folder), store tidy outputs; return problems."""
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError as err:
        raise needs_notebooks_extra("Re-executing notebooks", err) from err

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False, store_widget_state=False,
                   allow_errors=True, resources={"metadata": {"path": str(path.parent)}}).execute()
    problems = tidy(nb)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m convviz_widgets.notebook NOTEBOOK.ipynb ...`: execute each, print its time and problems."""
    import sys
    import time

    paths = list(sys.argv[1:] if argv is None else argv)
    failed = False
    for path in paths:
        start = time.perf_counter()
        problems = execute(path)
        print(f"{path}: {'ok' if not problems else 'PROBLEMS'} ({time.perf_counter() - start:.0f} s)", flush=True)
        for problem in problems:
            print(f"  {problem}")
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
