# Quick start (a clean clone, CPU, no network beyond the package index):
#   make figures     # embedded default -> results/figures/
#   make test        # the test suite
# Both create .venv on first use. On a GPU machine set TORCH to the build you want,
# e.g. `make figures TORCH='torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128'`.

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
CORES  ?= all

.PHONY: figures test lint report

$(BIN)/diffdict: pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)          # first, so nothing pulls a CUDA build of torch
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

# the peer SAE libraries, for the interop round-trip tests only
$(VENV)/.peers: $(BIN)/diffdict requirements-peers.txt
	$(BIN)/pip install -q -r requirements-peers.txt
	touch $@

figures: $(BIN)/diffdict
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores $(CORES) results/figures/

test: $(BIN)/diffdict $(VENV)/.peers  # --durations: the slowest tests, in every CI log
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q --durations=20

lint: $(BIN)/diffdict
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --lint

report: $(BIN)/diffdict
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores $(CORES) --report results/report/workflow.zip
