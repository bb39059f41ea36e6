# VLM2VLA — two commands on a fresh machine:
#   make demo   set up, then start the web demo on its embedded default (simulated arm, no weights)
#   make test   set up, then run the whole test suite (offline, CPU)
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= $(MUJOCO_GL)

.PHONY: setup demo test bench clean

$(STAMP): requirements.txt .ci/setup.sh
	bash .ci/setup.sh $(VENV)
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) -m app

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis test-artifacts
