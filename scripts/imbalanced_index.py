"""Rule imbalanced_index: balanced pool + profile + seed -> the imbalanced training subset."""

import _src  # noqa: F401  (puts src/ on sys.path)

from imbalance_study import datasets, imbalance, logs
from imbalance_study.atomic import write_npy

log = logs.to_file(snakemake.log[0])
labels = datasets.load_labels(snakemake.input.dataset, "train")
profile = imbalance.parse_profile(snakemake.wildcards.profile)
cap = int(snakemake.params.cap)  # classes with fewer examples (ImageNet's) are always minority
indices = imbalance.imbalanced_indices(labels, profile, cap, int(snakemake.wildcards.seed),
                                       snakemake.params.minority_classes)
write_npy(snakemake.output.index, indices)
log.info("class counts %s", imbalance.class_counts_of(indices, labels, labels.max() + 1).tolist())
