"""What made an output: the installed versions of the software, and a config's digest.

Versions are read from package metadata, so nothing is imported for them: a figure job (no PyTorch
in its environment) records its plotting libraries, a training job PyTorch's.
"""

from __future__ import annotations

import hashlib
import json
import platform
from importlib.metadata import PackageNotFoundError, version

TRAINING = ("imbalance-study", "torch", "numpy", "h5py")
PLOTTING = ("imbalance-study", "pandas", "matplotlib", "seaborn")
STUDY = ("imbalance-study", "snakemake", "torch", "numpy", "pandas", "matplotlib", "seaborn")


def software_versions(packages: tuple[str, ...]) -> dict:
    """Python's version and each package's (None for one not installed)."""
    versions = {"python": platform.python_version()}
    for package in packages:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return versions


def of_config(config: dict) -> dict:
    """A config's sha256 and the versions of the study's software."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    return {"config_sha256": digest, "software": software_versions(STUDY)}
