#!/usr/bin/env bash
# The GPU suite: exp2 graded with the judge on the GPU, the GPU re-run check for real, a batch of 100 exp2
# submissions, the reference 10-epoch training; one table for bench/RESULTS.md (steps: bench/gpu_suite.py).
#
#   bench/gpu_suite.sh --prepare        here, once: .gpu/ with the CIFAR-10 file (xz: 18 MB, so that it and the
#                                       checkout fit the 64 MiB a device call carries) and its materializer,
#                                       plus wheels of what the device's Python lacks (pydantic)
#   bench/gpu_suite.sh                  on the lent machine (one H200, 16 cores), with `carry: [".gpu"]`;
#                                       about 5 minutes; the table is also written to $OUT/gpu_suite.md
#   bench/gpu_suite.sh --cpu-dry-run    here, every step at a tiny size on the CPU (tests/test_gpu_suite.py)
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-}
RESULTS=${OUT:-out/gpu-suite}

if [ "$MODE" = "--prepare" ]; then
    SHARED=${SHARED_DATASETS:-../shared/datasets}
    mkdir -p .gpu/wheels
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> "$(git rev-parse --git-path info/exclude)"
    cp "$SHARED/materialize.py" .gpu/
    [ -f .gpu/cifar10-jpeg.npz.xz ] || xz -6 -T2 -c "$SHARED/cifar10-jpeg.npz" > .gpu/cifar10-jpeg.npz.xz
    # The device's Python 3.12 has torch, onnx, onnxruntime, typer, rich, pytest, pyyaml; not pydantic. The
    # versions this checkout's venv runs (pydantic pins its pydantic-core exactly).
    pins=$(.venv/bin/python -m pip list --format=freeze | grep -Ei '^(pydantic|pydantic[-_]core|annotated[-_]types|typing[-_]inspection)==')
    # shellcheck disable=SC2086
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/wheels $pins
    du -sh .gpu
    exit 0
fi

if [ "$MODE" = "--cpu-dry-run" ]; then
    PY=${PYTHON:-.venv/bin/python}
    DATA=${GRADER_DATA_ROOT:-data}
    exec "$PY" bench/gpu_suite.py --data-root "$DATA" --out "$RESULTS" --tiny
fi

PY=${PYTHON:-python3}
[ -f .gpu/cifar10-jpeg.npz.xz ] || { echo "no .gpu/cifar10-jpeg.npz.xz: run bench/gpu_suite.sh --prepare here and carry .gpu" >&2; exit 2; }
# What the machine's Python lacks, then the grader itself: the checkout on every interpreter's path (a .pth
# file), so that the judge, its workers and the contestants import it from here.
if ls .gpu/wheels/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-cache-dir .gpu/wheels/*.whl
fi
"$PY" -c "import os, site; open(os.path.join(site.getsitepackages()[0], 'torch-grader-checkout.pth'), 'w').write(os.getcwd())"
"$PY" -c "import grader.cli, pydantic, onnxruntime, torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
SRC=/tmp/gpu-suite-datasets
DATA=/tmp/gpu-suite-data
mkdir -p "$SRC"
cp .gpu/materialize.py "$SRC/"
[ -f "$SRC/cifar10-jpeg.npz" ] || "$PY" -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
    .gpu/cifar10-jpeg.npz.xz "$SRC/cifar10-jpeg.npz"
"$PY" "$SRC/materialize.py" --only cifar10 "$DATA"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec "$PY" bench/gpu_suite.py --data-root "$DATA" --out "$RESULTS"
