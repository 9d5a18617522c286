#!/usr/bin/env bash
# The checks that need a CUDA GPU, on a GPU machine whose python3 already holds PyTorch,
# torchvision, numpy, h5py, pandas and PyYAML but may have no internet and no Snakemake:
#   1. tests/test_cuda.py (the engines on CUDA against the CPU, a stacked GPU job, bf16, resume) and
#      the CUDA tests of tests/test_capturable_step.py (engine.graphs: auto captures the step);
#   2. scripts/benchmark.py --quick --no-workflow (images/s on CPU and CUDA, stacked K = 1/8/64,
#      scoring, the H100-hours projection for the MNIST grid, the bf16 accuracy guard);
#   3. scripts/benchmark_stacked_conv.py --device cuda (grouped against GEMM convolutions, TF32).
# Logs go to $OUT (or gpu-check/).
#
#   scripts/gpu_check.sh --prepare   here, with internet or a PyPI mirror and MNIST in ../shared/data:
#                                    jsonschema and its dependencies as Python 3.12 wheels in .whl/,
#                                    the official MNIST .gz files in data/gpu-mnist/ (both ignored by
#                                    git, 12 MB together: they travel with the working tree)
#   scripts/gpu_check.sh             there: installs .whl/ into a temporary folder, then runs 1 to 3
#                                    (its exit status is that of 1 and 2; 3 only prints)
#
# Both folders are ignored by git, so the device tool sends them only when its call names them:
#   carry: [".whl", "data/gpu-mnist"]
# Without one of them the script stops at once (exit 2, before pip, nvidia-smi or PyTorch), naming the
# missing folders and that carry list.
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
# What --prepare made here, checked before anything else: without the wheels the tests fail at
# `import jsonschema`, without the MNIST files the benchmark tries to download them.
missing=()
compgen -G ".whl/*.whl" > /dev/null || missing+=(".whl/ (jsonschema and its dependencies as wheels)")
for name in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    if [ ! -f "data/gpu-mnist/MNIST/raw/$name.gz" ]; then
        missing+=("data/gpu-mnist/ (MNIST's official .gz files in data/gpu-mnist/MNIST/raw/)")
        break
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    {
        echo "gpu_check.sh: missing in $PWD:"
        printf '  %s\n' "${missing[@]}"
        echo "Both folders are ignored by git and travel to the GPU machine only when carried. Run"
        echo "scripts/gpu_check.sh --prepare where there is internet (and MNIST in ../shared/data), then"
        echo "call the device tool's run with"
        echo '  carry: [".whl", "data/gpu-mnist"]'
    } >&2
    exit 2
fi
python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "no CUDA GPU visible to PyTorch")' || exit 1
out="${OUT:-gpu-check}"
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu-check-site \
    .whl/*.whl || exit 1
export PYTHONPATH="/tmp/gpu-check-site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())' \
    2>&1 | tee "$out/versions.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_capturable_step.py -k cuda \
    2>&1 | tee "$out/test_cuda.txt"
tests=${PIPESTATUS[0]}
python3 scripts/benchmark.py --quick --no-workflow --mnist-root data/gpu-mnist 2>&1 | tee "$out/benchmark.txt"
benchmark=${PIPESTATUS[0]}
python3 scripts/benchmark_stacked_conv.py --device cuda 2>&1 | tee "$out/benchmark_stacked_conv.txt"
echo "test_cuda exit $tests; benchmark exit $benchmark"
[ "$tests" -eq 0 ] && [ "$benchmark" -eq 0 ]
