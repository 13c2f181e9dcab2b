# bprl: the two commands. Both bootstrap .venv idempotently, then run.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.bprl-installed

.PHONY: demo test lint bench clean venv

venv: $(STAMP)

# torch==2.13.0 first: the CPU build lies on this machine's disk; a range would pull a CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,onnx,ray,bench]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bprl run experiments/quickstart.yaml

test: $(STAMP)
	$(VENV)/bin/ruff check bprl tests benchmarks
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check bprl tests benchmarks
	$(VENV)/bin/ruff format --check bprl tests benchmarks

bench: $(STAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache results
