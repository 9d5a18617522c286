"""Puts the repository's src/ on sys.path for the rules' scripts.

Snakemake adds a script's own folder to sys.path; this module, found there, adds the package beside
it, so the scripts import ``imbalance_study`` in any environment that runs them (the virtualenv, a
conda env from envs/, a cluster node), installed or not.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
