"""Hostile model files, built cheaply: a zip member that inflates to gigabytes, a layer declared huge, an assets bomb.

Used by tests/test_model_files.py and bench/bench_memory.py. The inflating members are real DEFLATE
streams (one compressed mebibyte of spaces, flushed so it stands alone, repeated), a few megabytes on
disk; their CRC is not computed (inflating them is what the loader must never do).
"""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path

MIB = 2**20


def _deflated_spaces(mebibytes: int) -> bytes:
    """A raw DEFLATE stream that inflates to `mebibytes` MiB of spaces (about 1 KB on disk per MiB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = packer.compress(b" " * MIB) + packer.flush(zlib.Z_FULL_FLUSH)
    return block * mebibytes + b"\x03\x00"  # a final empty fixed-Huffman block ends the stream


def write_zip(path: Path, members: list[tuple[str, bytes, int, int]]) -> None:
    """A zip archive of (name, data, method, inflated size) members, written by hand (data may be pre-deflated)."""
    body, directory = b"", b""
    for name, data, method, size in members:
        crc = zlib.crc32(data) if method == zipfile.ZIP_STORED else 0
        raw = name.encode()
        fields = struct.pack("<HHHHHIIIHH", 20, 0, method, 0, 0x21, crc, len(data), size, len(raw), 0)
        directory += (b"PK\x01\x02" + struct.pack("<H", 20) + fields
                      + struct.pack("<HHHII", 0, 0, 0, 0, len(body)) + raw)
        body += b"PK\x03\x04" + fields + raw + data
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), len(body), 0)
    path.write_bytes(body + directory + end)


def _members_of(keras_file: Path) -> list[tuple[str, bytes, int, int]]:
    """The members of a saved `.keras` file, to be written again stored."""
    with zipfile.ZipFile(keras_file) as zf:
        return [(name, zf.read(name), zipfile.ZIP_STORED, zf.getinfo(name).file_size) for name in zf.namelist()]


def write_config_bomb(path: Path, mebibytes: int = 2048) -> None:
    """A `.keras` file whose config.json inflates to `mebibytes` MiB (2 GiB by default): about 2 MB on disk."""
    meta = json.dumps({"keras_version": "3.0.0", "date_saved": "2024-01-01@00:00:00"}).encode()
    write_zip(path, [("metadata.json", meta, zipfile.ZIP_STORED, len(meta)),
                     ("config.json", _deflated_spaces(mebibytes), zipfile.ZIP_DEFLATED, mebibytes * MIB)])


def write_assets_bomb(path: Path, small_model: Path, mebibytes: int = 2048) -> None:
    """A real small `.keras` model with an extra asset that inflates to `mebibytes` MiB on disk when loaded."""
    write_zip(path, _members_of(small_model)
              + [("assets/vocabulary.txt", _deflated_spaces(mebibytes), zipfile.ZIP_DEFLATED, mebibytes * MIB)])


def write_huge_dense(path: Path, small_model: Path, side: int = 1000, units: int = 10_000, *,
                     understate: bool = False) -> None:
    """A `.keras` file whose config declares Flatten -> Dense(units) on a side x side x 3 input.

    With `understate`, only the input layer's shape and the units grow: every layer still declares the
    small model's input shapes, and only inferring the shapes from the input shows what Keras would build.

    `small_model` must be `tiny_flatten_dense()` saved: its shapes (37x41x3, Dense(7)) are replaced
    in the configuration; its small weights stay (Keras would allocate the declared layer before
    noticing they do not match): side 1000 gives 3 million inputs, 30 billion parameters, 112 GB.
    """
    members = _members_of(small_model)
    config = json.loads(dict((m[0], m[1]) for m in members)["config.json"])
    flat = 37 * 41 * 3

    def grow(value):  # noqa: ANN001, ANN202 - walks JSON
        if isinstance(value, dict):
            out = {k: grow(v) for k, v in value.items()}
            if out.get("units") == 7:
                out["units"] = units
            if understate and "batch_shape" not in out:
                return {**out, **{k: value[k] for k in ("build_config", "inbound_nodes") if k in value}}
            return out
        if isinstance(value, list):
            if value == [None, 37, 41, 3]:
                return [None, side, side, 3]
            if value == [None, flat]:
                return [None, side * side * 3]
            if value == [None, 7]:
                return [None, units]
            return [grow(v) for v in value]
        return value

    text = json.dumps(grow(config)).encode()
    write_zip(path, [(name, text if name == "config.json" else data, zipfile.ZIP_STORED,
                      len(text) if name == "config.json" else size) for name, data, _, size in members])


def tiny_flatten_dense():  # noqa: ANN201 - a keras.Model (keras is imported only when called)
    """The small model `write_huge_dense` grows: Input(37, 41, 3) -> Flatten -> Dense(7)."""
    import keras

    inputs = keras.Input((37, 41, 3))
    x = keras.layers.Conv2D(3, 3, padding="same", name="conv")(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, keras.layers.Dense(7, activation="softmax", name="head")(x))
