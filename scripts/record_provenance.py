"""Rule provenance: the config the study ran with, its sha256 and the software versions."""

import _src  # noqa: F401  (puts src/ on sys.path)

from imbalance_study import logs
from imbalance_study.atomic import write_json
from imbalance_study.config import provenance

log = logs.to_file(snakemake.log[0])
config = snakemake.params.config
write_json(snakemake.output.provenance, {**provenance(config), "config": config})
log.info("recorded the config (sha256 %s)", provenance(config)["config_sha256"])
