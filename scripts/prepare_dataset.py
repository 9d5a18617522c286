"""Rule prepare_dataset: one dataset source -> one HDF5 file."""

import _src  # noqa: F401  (puts src/ on sys.path)

from imbalance_study import datasets, logs

log = logs.to_file(snakemake.log[0])
dataset = datasets.prepare(snakemake.params.name, snakemake.params.settings, snakemake.output.h5)
log.info("wrote %s: %d training, %d test images of shape %s, %d classes", snakemake.output.h5,
         len(dataset.train_labels), len(dataset.test_labels), dataset.image_shape, dataset.n_classes)
