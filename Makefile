# Two entry points, each of which installs what it needs into .venv first:
#   make study   run the default study (config.yaml) -> figures/fig3.pdf, results/scores.csv
#   make test    run the test suite (what CI runs)
#   make test-fast   everything but the end-to-end workflow, MNIST and Slurm tests (under 2 minutes)
#   make slurm-profile   install profiles/slurm so that `snakemake --profile slurm` finds it (docs/cluster.md)
PYTHON ?= python3
VENV ?= .venv
INSTALLED := $(VENV)/.installed

.PHONY: study test test-fast lint clean-study slurm-profile

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[test]"
	touch $@

study: $(INSTALLED)
	$(VENV)/bin/snakemake

test: $(INSTALLED)
	$(VENV)/bin/python -m pytest

test-fast: $(INSTALLED)
	$(VENV)/bin/python -m pytest -m "not workflow and not mnist and not slurm"

lint: $(INSTALLED)
	$(VENV)/bin/snakemake --lint

clean-study:
	rm -rf results figures logs

# `snakemake --profile slurm` looks for a folder `slurm` in the working directory and in Snakemake's
# user config folder (~/.config/snakemake on Linux). This links profiles/slurm there, so the profile
# stays the checkout's (docs/cluster.md). An existing folder of that name is never replaced.
slurm-profile: $(INSTALLED)
	@target="$$($(VENV)/bin/python -c 'from snakemake.common import get_appdirs; print(get_appdirs().user_config_dir)')/slurm"; \
	if [ -e "$$target" ] && [ ! -L "$$target" ]; then \
		echo "$$target exists and is not a link; move it away, then run make slurm-profile again" >&2; exit 1; \
	fi; \
	mkdir -p "$$(dirname "$$target")" && ln -sfn "$(CURDIR)/profiles/slurm" "$$target" && \
	echo "installed: $$target -> $(CURDIR)/profiles/slurm"
