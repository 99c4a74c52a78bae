# The README's commands. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: run test lint typecheck unit system-deps test-cluster image bench clean

$(BIN)/certscope: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

## run: start the exporter (embedded default config unless ARGS="--config.file FILE")
run: $(BIN)/certscope
	MALLOC_MMAP_THRESHOLD_=1048576 $(BIN)/certscope serve $(ARGS)

system-deps:
	scripts/install-system-deps.sh

## test: lint, type-check and run the whole test suite
test: $(BIN)/certscope system-deps test-cluster lint typecheck unit

## test-cluster: build (once; cached under ~/.cache/certscope) etcd and kube-apiserver for the tests
test-cluster: system-deps
	scripts/test-cluster.sh build

lint: $(BIN)/certscope
	$(BIN)/ruff check
	$(BIN)/ruff format --check

typecheck: $(BIN)/certscope
	$(BIN)/mypy

unit: $(BIN)/certscope
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## image: build the container image with Buildah from a debootstrap-made Debian base, run it, scrape it
image: $(BIN)/certscope
	scripts/install-system-deps.sh buildah debootstrap
	$(BIN)/python -m pytest -o addopts="-ra --strict-markers" tests/image

bench: $(BIN)/certscope
	scripts/install-system-deps.sh prometheus-blackbox-exporter
	$(BIN)/python bench/probe_bench.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
