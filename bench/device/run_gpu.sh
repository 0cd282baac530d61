#!/usr/bin/env bash
# On a GPU machine with Python 3.12, JAX and PyTorch but no network, no TensorFlow and no Keras: install
# the carried wheels (bench/device/wheels, see fetch_wheels.sh) and this package without its dependencies,
# then run bench/gpu_backends.py under KERAS_BACKEND=jax and then torch; the tables go to $OUT.
#
#   bash bench/device/run_gpu.sh [gpu_backends.py options, e.g. --quick]     from the repository root
#   STAGE=opencv bash bench/device/run_gpu.sh    only unpacks wheels/opencv.tar.xz (carried alone: too big)
#
# Wheels are installed into bench/device/site (never into the machine's own environment), each only when
# the machine does not already have that distribution; site stays between calls while the machine is warm. Exits non-zero only when the setup fails; the
# bench itself exits 0 whatever its figures.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
wheels=${WHEELS:-$root/bench/device/wheels}
site=$root/bench/device/site
out=${OUT:-$root/bench/device/out}
py=${PYTHON:-python3}
mkdir -p "$site" "$out"
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL=2 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1
log=$out/setup.txt

missing_wheels() {  # the wheels in folder $1 whose distribution this Python does not have yet
    "$py" - "$1" <<'PY'
import importlib.metadata as md, pathlib, re, sys
for wheel in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    name = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
    try:
        md.version(name)
    except md.PackageNotFoundError:
        print(wheel)
PY
}

install_folder() {  # install what is missing from wheel folder $1 into $site, without dependencies
    [ -d "$1" ] || { echo "no wheel folder $1 (not carried this time)" | tee -a "$log"; return 0; }
    mapfile -t todo < <(missing_wheels "$1")
    echo "$(basename "$1"): ${#todo[@]} to install: ${todo[*]##*/}" | tee -a "$log"
    [ ${#todo[@]} -eq 0 ] || "$py" -m pip install --quiet --no-deps --target "$site" "${todo[@]}" >>"$log" 2>&1 \
        || { echo "installing $1 failed (see $log)"; tail -5 "$log"; exit 2; }
}

{ echo "== $(date -u)"; "$py" --version; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$py" -c "import jax, torch; print('jax', jax.__version__, jax.devices()); print('torch', torch.__version__, torch.cuda.is_available())"
} >>"$log" 2>&1
install_opencv() {  # OpenCV's wheel, unpacked from its xz archive (what pip would put there), unless cv2 imports
    if "$py" -c "import cv2" >/dev/null 2>&1; then echo "opencv: cv2 imports already" | tee -a "$log"; return 0; fi
    [ -f "$wheels/opencv.tar.xz" ] || { echo "opencv: cv2 is missing and opencv.tar.xz was not carried" | tee -a "$log"
                                         return 0; }
    tar xJf "$wheels/opencv.tar.xz" -C "$site" && echo "opencv: unpacked into $site" | tee -a "$log"
}

install_opencv
if [ "${STAGE:-all}" = opencv ]; then exit 0; fi
install_folder "$wheels/core"

# the package itself, built offline (setuptools and wheel from wheels/build), without its dependencies
"$py" -m pip install --quiet --no-deps --find-links "$wheels/build" --target "$site" --upgrade "$root" >>"$log" 2>&1 \
    || { echo "installing the package failed (see $log)"; tail -5 "$log"; exit 2; }
cd "$out" || exit 2  # so that the installed package, not the source tree, is imported
for backend in jax torch; do
    echo "== KERAS_BACKEND=$backend" | tee -a "$log"
    if ! KERAS_BACKEND=$backend "$py" -c "import convviz_widgets as cv; print(cv.__file__, cv.describe_device())" \
        >>"$log" 2>&1; then
        echo "import convviz_widgets failed under $backend:"; tail -5 "$log"; continue
    fi
    KERAS_BACKEND=$backend timeout "${BENCH_TIMEOUT:-240}" "$py" "$root/bench/gpu_backends.py" --installed \
        --json "$out/gpu_$backend.json" "$@" 2>"$out/gpu_$backend.err" | tee "$out/gpu_$backend.txt"
    echo "exit ${PIPESTATUS[0]}" | tee -a "$log"
done
