"""Rule sampled_index: the imbalanced subset -> its over- or undersampled version."""

import _src  # noqa: F401  (puts src/ on sys.path)

from imbalance_study import datasets, imbalance, logs, sampling
from imbalance_study.atomic import write_npy

log = logs.to_file(snakemake.log[0])
wildcards = snakemake.wildcards
labels = datasets.load_labels(snakemake.input.dataset, "train")
imbalanced = imbalance.load_indices(snakemake.input.imbalanced, len(labels))
sampler, ratio = sampling.parse_index_name(wildcards.index)
indices = sampling.sample(imbalanced, labels, sampler, ratio, int(wildcards.seed),
                          context=f"{wildcards.dataset}/{wildcards.profile}")
write_npy(snakemake.output.index, indices)
log.info("%s: class counts %s", wildcards.index, imbalance.class_counts_of(indices, labels, labels.max() + 1).tolist())
