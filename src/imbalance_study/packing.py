"""How the runs of a study are packed into jobs (``engine.runs_per_job``): one job trains and scores
a ``Bundle`` of runs that one process can train together."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from .imbalance import Profile
from .sampling import IMBALANCED

if TYPE_CHECKING:
    from .plan import Run


@dataclass(frozen=True)
class Bundle:
    """Runs that one job trains and scores: one dataset and imbalance profile, one model and protocol.

    ``after`` holds the names of the bundles with the first phases of its two-phase runs.
    """

    dataset: str
    profile: Profile
    number: int
    runs: tuple[Run, ...]
    after: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"bundle{self.number:02d}"

    @property
    def wildcards(self) -> dict:
        return {"dataset": self.dataset, "profile": self.profile.name, "bundle": self.name,
                "n_runs": len(self.runs)}

    def path(self, template: str) -> str:
        return template.format(**self.wildcards)

    def members(self) -> list[dict]:
        """What the bundle's job needs of each run: the run itself and where its files lie."""
        return [{"run": run.to_dict(), "run_dir": run.directory, "index_path": run.index_path(),
                 "imbalanced_path": run.index_path(IMBALANCED), "phase_one_dir": run.phase_one_directory()}
                for run in self.runs]


def pack(runs: list[Run], limit: int) -> list[Bundle]:
    """Runs packed into jobs of at most ``limit``: same dataset, profile, model, protocol and phase
    (and, in a second phase, the same fine-tuned layers; runs that train apart from those that only
    rescale a first phase's checkpoints). Losses and batch samplers may differ within a bundle: the
    stacked engine gives each network its own.

    A two-phase run waits for its first phase in an earlier bundle; a group larger than the limit is
    split into nearly equal bundles.
    """
    groups: dict[tuple, list[Run]] = {}
    protocols: dict[int, str] = {}  # per method (runs share their method's object): its protocol as text
    for run in runs:
        if id(run.method) not in protocols:
            protocols[id(run.method)] = json.dumps(asdict(run.protocol), sort_keys=True)
        model = json.dumps([run.model, run.model_options], sort_keys=True)
        groups.setdefault((run.dataset, run.profile, run.method.two_phase, model, protocols[id(run.method)],
                           run.method.fine_tuned, run.method.trains), []).append(run)
    packed: list[Bundle] = []
    home: dict[tuple, str] = {}
    numbers: dict[tuple, int] = {}
    for (dataset, profile, second_phase, *_), members in sorted(groups.items(), key=lambda item: item[0][2]):
        count = math.ceil(len(members) / limit)
        for part in range(count):
            chunk = tuple(members[part * len(members) // count: (part + 1) * len(members) // count])
            number_ = numbers.get((dataset, profile), 0)
            numbers[(dataset, profile)] = number_ + 1
            after = ()
            if second_phase:
                after = tuple(sorted({home[(dataset, profile.name, run.seed, run.method.phase_one)] for run in chunk}))
            bundle = Bundle(dataset, profile, number_, chunk, after)
            packed.append(bundle)
            home.update((run.key, bundle.name) for run in chunk)
    return packed
