#!/usr/bin/env bash
# Create (or reuse) the virtual environment that every README command runs in.
#
#   tools/setup_env.sh [VENV]      default VENV: .venv in the checkout
#
# Each step checks first and is skipped when already done, so a second run takes seconds.
# An existing environment (say a GPU box with its own torch) is reused as it is: pass its
# directory as VENV and only what it lacks gets installed.
# A new environment needs about NEED_GB (default 7) GB free on VENV's disk; the script checks first.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${1:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_PINS=(torch==2.14.1 torchvision==0.29.2)   # the CUDA build from PyPI; it runs on CPU too
MMCV_VERSION=2.1.0                               # newest mmcv that mmdet 3.3 and mmseg 1.2 accept
SETUPTOOLS="setuptools>=77.0.3,<81"    # torch needs >= 77.0.3; mmengine and mmcv's build import
                                       # pkg_resources, which setuptools 81 removed
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/crossformer_mm
NEED_GB=${NEED_GB:-7}                  # free disk a new environment needs

log() { echo "[setup] $*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY=$VENV/bin/python
pip() { "$PY" -m pip --disable-pip-version-check "$@"; }
# Python one-liner that succeeds when the check holds.
check() { "$PY" -c "$1" >/dev/null 2>&1; }

# A new environment takes 6.4 GB (torch's CUDA build 5.5 GB, the toolboxes) and mmcv's build:
# say so at once instead of failing midway in pip with "No space left on device".
if ! check "import torch"; then
  free_kb=$(df -Pk "$VENV" | awk 'NR == 2 {print $4}')
  if [ "$free_kb" -lt $((NEED_GB * 1024 * 1024)) ]; then
    echo "[setup] error: $VENV: $((free_kb / 1024)) MB free on its disk, a new environment needs about $NEED_GB GB" >&2
    exit 1
  fi
fi

if ! check "import setuptools, wheel, ninja; assert int(setuptools.__version__.split('.')[0]) < 81"; then
  log "installing build tools"
  pip install -q -U pip "$SETUPTOOLS" wheel ninja
fi

if ! check "import torch, torchvision"; then
  log "installing ${TORCH_PINS[*]}"
  pip install -q "${TORCH_PINS[@]}" "$SETUPTOOLS"
fi

if ! check "import mmcv, mmcv.ops; from packaging.version import Version as V; assert V('2.0') <= V(mmcv.__version__) < V('2.2')"; then
  key=$("$PY" -c "import sys, torch; print(f'py{sys.version_info[0]}.{sys.version_info[1]}-torch{torch.__version__}')")
  wheel_dir=$CACHE/mmcv-$MMCV_VERSION/$key
  if ! ls "$wheel_dir"/mmcv-*.whl >/dev/null 2>&1; then
    log "building mmcv $MMCV_VERSION with its compiled ops (8-15 minutes on 2 cores); cached in $wheel_dir"
    src=$(mktemp -d)
    pip download -q --no-deps --no-binary :all: --no-build-isolation "mmcv==$MMCV_VERSION" -d "$src"
    tar -xzf "$src"/mmcv-*.tar.gz -C "$src"
    # mmcv 2.1.0 compiles with -std=c++17; the headers of torch >= 2.10 need C++20.
    if grep -q 'C++20 or later' "$("$PY" -c 'import torch.utils.cpp_extension as c; print(c.include_paths()[0])' 2>/dev/null)/ATen/ATen.h"; then
      sed -i 's/-std=c++17/-std=c++20/' "$src/mmcv-$MMCV_VERSION/setup.py"
    fi
    MMCV_WITH_OPS=1 MAX_JOBS=$(nproc) pip wheel -q --no-build-isolation --no-deps \
      "$src/mmcv-$MMCV_VERSION" -w "$wheel_dir.tmp"
    mkdir -p "$wheel_dir"
    mv "$wheel_dir.tmp"/mmcv-*.whl "$wheel_dir"/ && rmdir "$wheel_dir.tmp" && rm -rf "$src"
  fi
  log "installing $(ls "$wheel_dir"/mmcv-*.whl)"
  pip install -q "$wheel_dir"/mmcv-*.whl
fi

# Reinstall the package whenever setup.py changes (new requirements or extras).
stamp=$VENV/.crossformer_mm-setup
want=$(cat setup.py | sha1sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! check "import crossformer_mm, mmdet, mmseg, mmpretrain"; then
  log "installing crossformer_mm (editable) with mmdet, mmseg, mmpretrain"
  pip install -q -e ".[all]"
  # The first import also writes yapf's grammar cache (~/.cache/YAPF), which processes that first
  # import it together (dist_train.sh's ranks, the suite's workers) can read half-written
  # (google/yapf#1164).
  "$PY" -c "import crossformer_mm, mmdet, mmseg, mmpretrain"
  echo "$want" > "$stamp"
fi
log "environment ready: $VENV"
