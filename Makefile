# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel of torch 2.13.0 lies on machines like ours; pinning it first keeps pip from
# pulling a multi-GB CUDA build. Users with GPUs install the package normally (torch>=2.2).
TORCH_PIN ?= torch==2.13.0
DEMO_DIR ?= runs/demo

.PHONY: install demo test test-slow test-slurm test-all lint bench clean

$(BIN)/hpsearch: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_PIN)" || $(BIN)/pip install -q "torch>=2.2"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

install: $(BIN)/hpsearch

demo: install
	rm -rf $(DEMO_DIR)
	$(BIN)/hpsearch master start sweeps/demo.yaml --dir $(DEMO_DIR)
	$(BIN)/hpsearch report $(DEMO_DIR) --top 10
	@echo "hpsearch is installed in $(VENV): run 'source $(VENV)/bin/activate' to type hpsearch (or call $(BIN)/hpsearch)"

test: install
	$(BIN)/python -m pytest -q -x

test-slow: install
	$(BIN)/python -m pytest -q -m slow

test-slurm: install
	$(BIN)/python -m pytest -q -m slurm -rs

test-all: test test-slow test-slurm

# ruff (lint + format check) and mypy over the code; import-linter keeps the layers of
# docs/ARCHITECTURE.md (nothing imports a higher layer, no import cycles, search/ touches no file).
lint: install
	$(BIN)/pip install -q -e ".[lint]"
	$(BIN)/ruff check hpsearch tests bench examples scripts
	$(BIN)/ruff format --check hpsearch tests bench examples scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) runs *.egg-info .pytest_cache
