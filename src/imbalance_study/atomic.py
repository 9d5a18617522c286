"""Write files so that a killed job never leaves a truncated file under its final name, and a full disk
is reported as one, naming the file."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np

TEMPORARY_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds.

    The temporary name keeps the final suffix so that libraries which look at the suffix
    (matplotlib, numpy) still pick the right format.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f"{TEMPORARY_PREFIX}{os.getpid()}-{final.name}")
    try:
        yield temporary
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, final)
    except (OSError, RuntimeError) as error:
        # Libraries say a full disk in their own words (PyTorch: "basic_ios::clear: iostream error";
        # h5py: "Can't write data"): the space left, read before the partial file is removed, tells.
        if not isinstance(error, DiskFullError) and out_of_space(error, final.parent):
            raise DiskFullError(final) from error
        raise
    finally:
        temporary.unlink(missing_ok=True)


# Less free space than this after a failed write: the write failed for want of space.
NEARLY_FULL_BYTES = 1 << 20


class DiskFullError(OSError):
    def __init__(self, path: Path):
        free = shutil.disk_usage(Path(path).parent).free
        super().__init__(errno.ENOSPC, f"no space left on device while writing {path} ({free:,} bytes free)")


def out_of_space(error: BaseException, folder: Path) -> bool:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        return shutil.disk_usage(folder).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def ensure_space(path: str | os.PathLike, needed: int) -> None:
    """Refuse a write of about ``needed`` bytes at ``path`` that cannot fit, before anything is written."""
    folder = Path(path).parent
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.disk_usage(folder).free < needed + NEARLY_FULL_BYTES:
        raise DiskFullError(Path(path))


def write_json(path: str | os.PathLike, payload: object) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.save(handle, array, allow_pickle=False)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
