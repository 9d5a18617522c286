"""scripts/gpu_check.sh stops before anything else when a folder that --prepare makes was not carried.

The script runs in a temporary copy of itself (scripts/gpu_check.sh in an empty folder), with
python3, pip and nvidia-smi on PATH replaced by stubs that record each call: no GPU, no network and
no installation is needed, and the tests check that none of them was reached.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO

CARRY = '[".whl", "data/gpu-mnist"]'
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def checkout(root: Path, wheels: bool, mnist: bool) -> Path:
    """A copy of the script in ``root``, with stubs on PATH, and what --prepare would have made."""
    (root / "scripts").mkdir(parents=True)
    shutil.copy2(REPO / "scripts" / "gpu_check.sh", root / "scripts" / "gpu_check.sh")
    stubs = root / "stubs"
    stubs.mkdir()
    for name in ("python3", "python", "pip", "pip3", "nvidia-smi"):
        stub = stubs / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> "{root}/calls.log"\nexit 0\n')
        stub.chmod(0o755)
    if wheels:
        (root / ".whl").mkdir()
        (root / ".whl" / "jsonschema-4.26.0-py3-none-any.whl").write_bytes(b"")
    if mnist:
        raw = root / "data" / "gpu-mnist" / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for name in MNIST_FILES:
            (raw / f"{name}.gz").write_bytes(b"")
    return stubs


def gpu_check(root: Path, stubs: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{stubs}{os.pathsep}{os.environ.get('PATH', '')}", "OUT": str(root / "out")}
    return subprocess.run(["bash", str(root / "scripts" / "gpu_check.sh")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("wheels, mnist, missing, present", [
    (False, True, [".whl/"], ["data/gpu-mnist/ ("]),
    (True, False, ["data/gpu-mnist/"], [".whl/ ("]),
    (False, False, [".whl/", "data/gpu-mnist/"], []),
])
def test_a_missing_folder_stops_the_script_with_the_carry_list(tmp_path, wheels, mnist, missing, present):
    stubs = checkout(tmp_path, wheels, mnist)
    result = gpu_check(tmp_path, stubs)
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr
    for folder in missing:
        assert f"  {folder} (" in message, message
    for folder in present:  # a folder that is there is not reported missing
        assert f"  {folder}" not in message, message
    assert f"carry: {CARRY}" in message, message
    # It stopped before pip, PyTorch and nvidia-smi, and wrote nothing.
    assert not (tmp_path / "calls.log").exists(), (tmp_path / "calls.log").read_text()
    assert not (tmp_path / "out").exists() and not (tmp_path / "gpu-check").exists()


def test_a_half_copied_mnist_folder_counts_as_missing(tmp_path):
    stubs = checkout(tmp_path, wheels=True, mnist=True)
    (tmp_path / "data" / "gpu-mnist" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    result = gpu_check(tmp_path, stubs)
    assert result.returncode == 2 and "  data/gpu-mnist/ (" in result.stderr, result.stderr


def test_with_both_folders_it_goes_on_to_the_gpu_check(tmp_path):
    """With both folders there the check passes and the script reaches its first python3 call (the
    stub here, which stands in for the CUDA check)."""
    stubs = checkout(tmp_path, wheels=True, mnist=True)
    result = gpu_check(tmp_path, stubs)
    assert "carry:" not in result.stderr, result.stderr
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert calls[0].startswith("python3 -c import sys, torch"), calls
