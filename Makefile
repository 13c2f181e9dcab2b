# bprl: the two commands. Both bootstrap .venv idempotently from the lock, then run.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.bprl-installed
# Exact versions of every dependency of .[dev,onnx,ray,bench,docs] (see `make lock`).
LOCK   := requirements/lock.txt
LOCK_IN := requirements/lock.in
# torch: always this exact release. The CPU build lies on this machine's disk; a range or a bare
# `torch` pulls a multi-GB CUDA build.
TORCH  := torch==2.13.0
EXTRAS := dev,onnx,ray,bench,docs
# `make lock`: pip-tools in a venv of its own; LOCK_ARGS=--upgrade takes the newest allowed versions
# (`make lock LOCK_ARGS=` keeps the current pins and only adds or drops what pyproject.toml changed).
LOCK_VENV  ?= .venv-lock
PIP_TOOLS  ?= pip-tools==7.7.0
LOCK_ARGS  ?= --upgrade
# `make test-latest`: a separate venv with the newest versions pyproject.toml allows.
LATEST_VENV ?= .venv-latest
PYTEST_ARGS ?=

.PHONY: demo test lint bench docs clean venv lock test-latest pretrained rhythm-models browser

venv: $(STAMP)

# 1. pip at the locked version, 2. torch first (the CPU build), 3. everything else from the lock,
# 4. bprl itself without dependencies or build isolation (setuptools and wheel come from the lock),
# 5. pip check: the lock is consistent. Nothing unpinned is installed.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c $(LOCK) pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bprl run experiments/quickstart.yaml

# Rebuild the shipped default estimator (bprl/estimator/weights/default) from the virtual cohort:
# a training cohort and a held-out cohort (other seed), paired within-subject training, held-out
# tracking metrics in its MODEL_CARD.md. Cohorts and replay tables go to results/pretrain.
pretrained: $(STAMP)
	$(VENV)/bin/bprl estimator pretrain --out bprl/estimator/weights/default --work results/pretrain

# Rebuild the shipped rhythm models (bprl/beats/models: af_rr.txt, cinc2017.txt, qrs_onset.txt and
# their JSON cards) from the dev AFDB, CinC 2017 and LUDB data ($BPRL_RHYTHM_DIR or
# ../shared/data/rhythm): deterministic, a few minutes; prints the cross-validation tables.
rhythm-models: $(STAMP)
	$(PY) -m bprl.beats.train_rhythm --out bprl/beats/models
	$(PY) -m bprl.beats.train_qrs_onset --out bprl/beats/models/qrs_onset.txt

# Browser tests (report.html and `bprl view` in headless Chromium) need Debian's chromium and
# chromium-driver: installed with apt-get where missing and allowed, else those tests are skipped
# with the reason (tools/install_browser.sh never fails the setup).
browser:
	@sh tools/install_browser.sh

test: $(STAMP) browser
	$(VENV)/bin/ruff check bprl tests benchmarks examples
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The docs site (mkdocs.yml): strict, so a broken link, a missing page or a failing generated
# block (docs/hooks.py, mkdocstrings) is an error. Open site/index.html.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

lint: $(STAMP)
	$(VENV)/bin/ruff check bprl tests benchmarks examples
	$(VENV)/bin/ruff format --check bprl tests benchmarks examples

bench: $(STAMP)
	$(PY) -m benchmarks

# Refresh the lock: resolve pyproject.toml (all the extras) plus requirements/lock.in with pip-compile,
# strip torch's local label (+cpu) so the pin reads torch==2.13.0, and write requirements/lock.txt.
lock:
	test -x $(LOCK_VENV)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_VENV) && \
		$(LOCK_VENV)/bin/python -m pip install --quiet $(PIP_TOOLS); }
	if [ -f $(LOCK) ]; then cp $(LOCK) $(LOCK).new; fi
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet $(LOCK_ARGS) \
		--strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
		$(foreach e,$(subst $(comma), ,$(EXTRAS)),--extra $(e)) \
		--output-file $(LOCK).new pyproject.toml $(LOCK_IN)
	{ printf '%s\n' \
		'# requirements/lock.txt: exact versions of every dependency of bprl[$(EXTRAS)], for Python 3.11.' \
		'# Made by `make lock`: pip-compile ($(PIP_TOOLS)) resolves pyproject.toml with the extras' \
		'# $(EXTRAS) plus requirements/lock.in (torch==2.13.0, pip, setuptools, wheel), with' \
		'# --strip-extras --allow-unsafe $(LOCK_ARGS); then the local label of torch (+cpu) is dropped.' \
		'# Installed by `make venv` (torch first, then this file, then bprl with --no-deps).' ; \
	  sed -e '/^# requirements\/lock.txt:/,/^# Installed by/d' \
	      -e 's/^torch==\([0-9.]*\)+[a-z0-9.]*$$/torch==\1/' $(LOCK).new ; } > $(LOCK)
	rm -f $(LOCK).new

comma := ,

# Newest versions that pyproject.toml allows (torch still 2.13.0), in a venv of their own, then the
# suite: warns of a break coming before it reaches the lock. PYTEST_ARGS narrows the run.
test-latest:
	test -x $(LATEST_VENV)/bin/python || $(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install --quiet $(TORCH)
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager \
		-e ".[$(EXTRAS)]" $(TORCH)
	$(LATEST_VENV)/bin/python -m pip check
	$(LATEST_VENV)/bin/python -m pip freeze --exclude-editable > $(LATEST_VENV)/versions.txt
	@echo "newest allowed versions: $(LATEST_VENV)/versions.txt"
	$(LATEST_VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(LATEST_VENV) $(LOCK_VENV) .pytest_cache results site
