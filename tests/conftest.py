import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def mnist_source() -> Path | None:
    """The official MNIST files: $IMBALANCE_STUDY_MNIST_SOURCE, or ../shared/data beside the checkout."""
    candidates = [os.environ.get("IMBALANCE_STUDY_MNIST_SOURCE"), REPO.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "MNIST" / "raw").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def mnist_files() -> Path:
    source = mnist_source()
    if source is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the real-MNIST checks, but no MNIST files were found (../shared/data)")
        pytest.skip("no official MNIST files here (set IMBALANCE_STUDY_MNIST_SOURCE)")
    return source


@pytest.fixture
def float64():
    """PyTorch's default dtype float64 for the test, where comparisons need a tolerance derived from
    float64 rounding (a CPU's float32 kernels sum in orders that change between CPU models)."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
