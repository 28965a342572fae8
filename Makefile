# Two commands on a fresh machine: `make run` and `make test` (ruff, import contracts, the tests).
# Both bootstrap .venv first.
# CUDA machines: override the torch requirement, e.g.
#   make run TORCH_SPEC="torch==2.13.0" PIP_TORCH_ARGS="--index-url https://download.pytorch.org/whl/cu126"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PIP_TORCH_ARGS ?=
STAMP := $(VENV)/.kiln-installed

.PHONY: run test bench clean-venv

$(STAMP): pyproject.toml client/pyproject.toml Makefile
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet "$(TORCH_SPEC)" $(PIP_TORCH_ARGS)
	$(VENV)/bin/python -m pip install --quiet -e ".[dev]"
	# The client (the `kiln` command and the SDK) after the server, whose commands plug into it.
	$(VENV)/bin/python -m pip install --quiet -e "./client[numpy]"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/kiln up

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest

bench: $(STAMP)
	$(VENV)/bin/python bench/train_throughput.py

clean-venv:
	rm -rf $(VENV)
