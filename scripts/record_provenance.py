"""Rule provenance: the config the study ran with, its sha256 and the software versions."""

import _src  # noqa: F401  (puts src/ on sys.path)

from imbalance_study import logs
from imbalance_study.atomic import write_json
from imbalance_study.provenance import of_config

log = logs.to_file(snakemake.log[0])
config = snakemake.params.config
made_by = of_config(config)
write_json(snakemake.output.provenance, {**made_by, "config": config})
log.info("recorded the config (sha256 %s)", made_by["config_sha256"])
