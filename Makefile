# Two entry points, each of which installs what it needs into .venv first:
#   make study   run the default study (config.yaml) -> figures/fig3.pdf, results/scores.csv
#   make test    run the test suite
PYTHON ?= python3
VENV ?= .venv
INSTALLED := $(VENV)/.installed

.PHONY: study test lint clean-study

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[test]"
	touch $@

study: $(INSTALLED)
	$(VENV)/bin/snakemake

test: $(INSTALLED)
	$(VENV)/bin/python -m pytest

lint: $(INSTALLED)
	$(VENV)/bin/snakemake --lint

clean-study:
	rm -rf results figures logs
