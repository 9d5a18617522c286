"""Rule indices: balanced pool + profile -> each seed's imbalanced set and its sampled versions."""

import _src  # noqa: F401  (puts src/ on sys.path)

from imbalance_study import datasets, imbalance, logs, sampling
from imbalance_study.atomic import write_json

log = logs.to_file(snakemake.log[0])
params = snakemake.params
manifest = sampling.write_index_files(  # the dataset's content checksum is checked as it loads
    datasets.load(snakemake.input.dataset).train_labels, imbalance.Profile(**params.profile),
    params.cap if params.cap == imbalance.NATURAL else int(params.cap),
    params.data_seeds, params.minority_classes, [sampling.IndexFile(**index) for index in params.index_files],
    params.paths, context=params.context)
write_json(snakemake.output.manifest, manifest)
for seed, files in manifest.items():
    log.info("seed %s: %s", seed, "; ".join(f"{name} {entry['class_counts']}" for name, entry in files.items()))
