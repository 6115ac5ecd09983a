# ENS: one entry point for setting up, running, testing and deploying.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
SAM_VENV := .venv-sam
CHECKOV_VENV := .venv-checkov
PY312_VENV := .venv-py312
PY := $(VENV)/bin/python
SAM := PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" $(SAM_VENV)/bin/sam
CONFIG ?= local/config/local.toml
PYTEST_ARGS ?=
export AWS_DEFAULT_REGION ?= eu-west-1
# pip on these machines warns about missing mirrors; the warnings say nothing about the project.
export PIP_NO_WARN_SCRIPT_LOCATION := 1
export SAM_CLI_TELEMETRY := 0

.PHONY: help venv run test test-py312 lint format template-check openapi build deploy bench lock clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 18

$(VENV)/.installed: requirements/dev.txt requirements/dev-constraints.txt layers/ens/requirements.txt scripts/bootstrap-venv
	@scripts/bootstrap-venv $(VENV) requirements/dev.txt layers/ens local tests tools 2> >(grep -v '^WARNING: Location' >&2)

$(PY312_VENV)/.installed: requirements/dev.txt requirements/dev-py312-constraints.txt layers/ens/requirements.txt scripts/bootstrap-venv
	@ENS_PYTHON_VERSION=3.12 ENS_CONSTRAINTS=requirements/dev-py312-constraints.txt scripts/bootstrap-venv $(PY312_VENV) requirements/dev.txt layers/ens local tests tools 2> >(grep -v '^WARNING: Location' >&2)

$(SAM_VENV)/.installed: requirements/sam.txt requirements/sam-constraints.txt scripts/bootstrap-venv
	@scripts/bootstrap-venv $(SAM_VENV) requirements/sam.txt 2> >(grep -v '^WARNING: Location' >&2)

$(CHECKOV_VENV)/.installed: requirements/checkov.txt requirements/checkov-constraints.txt scripts/bootstrap-venv
	@scripts/bootstrap-venv $(CHECKOV_VENV) requirements/checkov.txt 2> >(grep -v '^WARNING: Location' >&2)

venv: $(VENV)/.installed $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed ## Create or refresh the virtualenvs

run: $(VENV)/.installed ## Start the local stack in the foreground (CONFIG=path to use another settings file)
	$(PY) -m ens_local --config $(CONFIG)

test: venv lint template-check ## Lint, check the template, run every test (Python 3.13, then 3.12)
	$(PY) -m pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-py312

test-py312: $(PY312_VENV)/.installed $(SAM_VENV)/.installed ## The whole test suite again under Python 3.12, the oldest Lambda still supports
	$(PY312_VENV)/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(VENV)/.installed ## ruff lint and format check, mypy type check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	@# One run per function: each one's module is called `app`, which mypy refuses twice in a run.
	@set -e; for app in $(wildcard functions/*/app.py); do echo "$(VENV)/bin/mypy $$app"; $(VENV)/bin/mypy "$$app"; done

format: $(VENV)/.installed ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

template-check: venv ## cfn-lint, sam validate --lint and checkov on template.yaml
	$(VENV)/bin/cfn-lint template.yaml
	$(SAM) validate --lint --template template.yaml --region $(AWS_DEFAULT_REGION)
	@# Offline: --skip-download keeps checkov from fetching Prisma Cloud's guidelines. Every finding is
	@# fixed or skipped in the template's Metadata with its reason (docs/deploy.md).
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --compact --quiet --skip-download

openapi: $(VENV)/.installed ## Regenerate docs/openapi.json from the devices API's routes (a test fails on drift)
	$(PY) functions/devices/app.py > docs/openapi.json

build: $(SAM_VENV)/.installed ## sam build (arm64, python3.13) into .aws-sam/
	$(SAM) build --template template.yaml

deploy: build ## sam deploy with a samconfig.toml profile: make deploy ENV=dev
	$(SAM) deploy --config-env $(or $(ENV),dev)

bench: $(VENV)/.installed ## Run the benchmarks in bench/ and print their figures
	$(PY) -m bench

lock: $(VENV)/.installed $(SAM_VENV)/.installed $(PY312_VENV)/.installed $(CHECKOV_VENV)/.installed ## Re-pin every package of the virtualenvs after changing requirements/*.txt
	(echo "# Every package of .venv, pinned (pip freeze). Regenerate with make lock."; $(PY) -m pip freeze --exclude-editable) > requirements/dev-constraints.txt
	(echo "# Every package of .venv-sam, pinned (pip freeze). Regenerate with make lock."; $(SAM_VENV)/bin/python -m pip freeze --exclude-editable) > requirements/sam-constraints.txt
	(echo "# Every package of .venv-py312, pinned (pip freeze). Regenerate with make lock."; $(PY312_VENV)/bin/python -m pip freeze --exclude-editable) > requirements/dev-py312-constraints.txt
	(echo "# Every package of .venv-checkov, pinned (pip freeze). Regenerate with make lock."; $(CHECKOV_VENV)/bin/python -m pip freeze --exclude-editable) > requirements/checkov-constraints.txt

clean: ## Remove virtualenvs and build output
	rm -rf $(VENV) $(SAM_VENV) $(PY312_VENV) $(CHECKOV_VENV) .aws-sam .pytest_cache .ruff_cache .mypy_cache
