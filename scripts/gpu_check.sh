#!/usr/bin/env bash
# The checks that need a CUDA GPU, on a GPU machine whose python3 already holds PyTorch,
# torchvision, numpy, h5py, pandas and PyYAML but may have no internet and no Snakemake:
#   1. tests/test_cuda.py (the engines on CUDA against the CPU, a stacked GPU job, bf16, resume);
#   2. scripts/benchmark.py --quick --no-workflow (images/s on CPU and CUDA, stacked K = 1/8/64,
#      scoring, the H100-hours projection for the MNIST grid, the bf16 accuracy guard).
# Logs go to $OUT (or gpu-check/).
#
#   scripts/gpu_check.sh --prepare   here, with internet or a PyPI mirror and MNIST in ../shared/data:
#                                    jsonschema and its dependencies as Python 3.12 wheels in .whl/,
#                                    the official MNIST .gz files in data/gpu-mnist/ (both ignored by
#                                    git, 12 MB together: they travel with the working tree)
#   scripts/gpu_check.sh             there: installs .whl/ into a temporary folder, then runs 1 and 2
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--prepare" ]; then
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
        jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 || exit 1
    mkdir -p data/gpu-mnist/MNIST/raw && cp ../shared/data/MNIST/raw/*.gz data/gpu-mnist/MNIST/raw/ || exit 1
    du -sh .whl data/gpu-mnist
    exit 0
fi
python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "no CUDA GPU visible to PyTorch")' || exit 1
out="${OUT:-gpu-check}"
mkdir -p "$out"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu-check-site \
        .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/gpu-check-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())' \
    2>&1 | tee "$out/versions.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/test_cuda.txt"
tests=${PIPESTATUS[0]}
python3 scripts/benchmark.py --quick --no-workflow --mnist-root data/gpu-mnist 2>&1 | tee "$out/benchmark.txt"
benchmark=${PIPESTATUS[0]}
echo "test_cuda exit $tests; benchmark exit $benchmark"
[ "$tests" -eq 0 ] && [ "$benchmark" -eq 0 ]
