# VLM2VLA — two commands on a fresh machine:
#   make demo   set up, then start the web demo on its embedded default (simulated arm, no weights)
#   make test   set up, then lint (ruff check .) and run the whole test suite (offline, CPU)
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= $(MUJOCO_GL)

EVAL_VENV ?= .venv-eval
EVAL_STAMP := $(EVAL_VENV)/.installed

.PHONY: setup eval-setup demo test bench clean

$(STAMP): requirements.txt .ci/setup.sh
	bash .ci/setup.sh $(VENV)
	@touch $(STAMP)

setup: $(STAMP)

# lmms-eval's own environment, layered on .venv (python -m evaluation.vqa lmms; its test)
$(EVAL_STAMP): $(STAMP) requirements-eval.txt pyproject.toml .ci/setup-eval.sh
	bash .ci/setup-eval.sh $(EVAL_VENV) $(VENV)
	@touch $(EVAL_STAMP)

eval-setup: $(EVAL_STAMP)

demo: setup
	$(PY) -m app

test: setup eval-setup
	$(PY) -m ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(EVAL_VENV) .pytest_cache .hypothesis test-artifacts
