"""Start Keras's backend quietly: TensorFlow without its C++ start-up lines, GPU memory taken as needed.

Keras picks its backend (`KERAS_BACKEND`: tensorflow, jax or torch) when it is imported; TensorFlow is
imported and touched only when it is that backend, so JAX or PyTorch run where TensorFlow is not installed.

TensorFlow's native libraries print lines such as "All log messages before absl::InitializeLog()
is called are written to STDERR", "oneDNN custom operations are on" or "failed call to cuInit"
while loading and at the first device query, before TF_CPP_MIN_LOG_LEVEL is read. They are
written to file descriptor 2 directly, so `sys.stderr` cannot catch them: descriptor 2 itself is
pointed at a temporary file while TensorFlow starts, then restored, and every captured line that
is not a known start-up line is written back, so real errors still reach the user.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Python-side and post-start C++ logging: warnings and up

# Messages TensorFlow's native code prints on every start, with or without a GPU.
_START_UP_MESSAGES = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
    "Could not find cuda drivers on your machine",
    "failed call to cuInit",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "computation placer already registered",
    "TF-TRT Warning: Could not find TensorRT",
    "successful NUMA node read from SysFS",
    "Your kernel may have been built without NUMA support",
    "Created device /job:localhost/replica:0/task:0/device:GPU",
)
# absl's prefix: severity, date, time, thread id, source file and line, e.g. "I0000 00:00:17.5 123 port.cc:153] ".
_ABSL_PREFIX = re.compile(r"^(?:[IWEF]\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\] |WARNING: )")

_started = False


def is_start_up_line(line: str) -> bool:
    """True for one of TensorFlow's known start-up lines (and nothing else)."""
    text = line.strip()
    if not text:
        return False
    body = _ABSL_PREFIX.sub("", text, count=1)
    return body.startswith(_START_UP_MESSAGES)


def filter_start_up(text: str) -> str:
    """The captured text without TensorFlow's start-up lines (blank lines between them dropped too)."""
    kept = [line for line in text.splitlines(keepends=True) if not is_start_up_line(line)]
    if all(not line.strip() for line in kept):
        return ""
    return "".join(kept)


@contextlib.contextmanager
def start_up_lines_hidden() -> Iterator[None]:
    """Capture descriptor 2 during the block; write back what is not a start-up line."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable descriptor 2 (e.g. pythonw): nothing to hide
        yield
        return
    capture = tempfile.TemporaryFile()
    try:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            capture.seek(0)
            rest = filter_start_up(capture.read().decode("utf-8", errors="replace"))
            if rest:
                os.write(2, rest.encode("utf-8"))
    finally:
        os.close(saved)
        capture.close()


def start_backend() -> str:
    """Import Keras and its backend once, hiding TensorFlow's start-up lines; the backend's name.

    Keras is imported while descriptor 2 is captured, since on the TensorFlow backend it imports
    TensorFlow; only then is TensorFlow asked for its devices (and given memory growth). On JAX,
    GPU memory is not preallocated unless the user says otherwise (XLA_PYTHON_CLIENT_PREALLOCATE).
    """
    global _started
    if _started:
        import keras

        return keras.config.backend()
    _started = True
    with start_up_lines_hidden():  # a TensorFlow the user started already has printed its lines: nothing is lost
        import keras

        backend = keras.config.backend()
        if backend == "tensorflow":
            import tensorflow as tf

            tf.config.list_physical_devices()  # the cuInit lines come with the first device query
            enable_memory_growth(tf)
    if backend == "jax" and memory_growth_wanted():  # importing Keras starts no JAX device: not too late
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # read by JAX at its first device use
    return backend


def memory_growth_wanted() -> bool:
    """GPU memory growth is on unless CONVVIZ_GPU_MEMORY_GROWTH is 0/false/no/off."""
    return os.environ.get("CONVVIZ_GPU_MEMORY_GROWTH", "1").strip().lower() not in ("0", "false", "no", "off")


def enable_memory_growth(tf: object) -> list[str]:
    """Let each GPU's memory grow as needed instead of TensorFlow taking it all at the first op.

    Must run before any op touches a GPU; a GPU already in use keeps its setting. Returns the GPUs set.
    """
    if not memory_growth_wanted():
        return []
    done = []
    for gpu in tf.config.list_physical_devices("GPU"):
        with contextlib.suppress(RuntimeError, ValueError):  # already initialised: too late, keep going
            tf.config.experimental.set_memory_growth(gpu, True)
            done.append(gpu.name)
    return done
