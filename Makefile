# infra-templates. `make help` lists the targets. Every target sets up what it needs itself.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Python's bytecode cache on (__pycache__/, git-ignored) for every command make runs, even where the
# caller's environment turned it off: without it each process compiles the project's modules again
# and pytest rewrites every test module's assertions again, per worker (collecting the tests took
# 6.2 s of CPU instead of 3.6 s, each generate.py process 0.13 s more).
unexport PYTHONDONTWRITEBYTECODE

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	touch $(STAMP)

venv: $(STAMP) ## create .venv with the pinned tools (done by every other target)

templates: $(STAMP) dot ## write output/<env>/ for every environment (python generate.py), diagrams included (DIAGRAM_DETAIL=all: every resource)
	$(PY) generate.py $(if $(DIAGRAM_DETAIL),--diagram-detail $(DIAGRAM_DETAIL)) $(if $(DEPLOYED_DIR),--deployed $(DEPLOYED_DIR))

gate: templates ## run the gate on output/: wiring, limits, cfn-lint, checkov, IAM analysis, shellcheck
	$(PY) generate.py check

# The targets that act on AWS check, in this order, before anything slow (the gate takes tens of seconds on a cold cache):
# ENV (missing or unknown: the usage and the environments, exit 2), then the AWS CLI and its
# credentials (one line, exit 1); only then do they build or gate. ENV, SERVICE and the day-2
# scripts' own checks are in the scripts make templates wrote into output/<env>/ (built if missing).
ENVIRONMENTS = $$(cd environments && ls *.yaml | grep -v '^defaults.yaml$$' | sed 's/\.yaml$$//' | tr '\n' ' ')project
CHECK_ENV = test -n "$(ENV)" || { echo "usage: make $@ ENV=name$(1); environments: $(ENVIRONMENTS)" >&2; exit 2; }; test "$(ENV)" = project || { test "$(ENV)" != defaults && test -f "environments/$(ENV).yaml"; } || { echo "make $@: ENV=$(ENV) is not an environment ($(if $(filter defaults,$(ENV)),defaults.yaml holds the settings every environment shares,no environments/$(ENV).yaml)); usage: make $@ ENV=name$(1); environments: $(ENVIRONMENTS)" >&2; exit 2; }
CHECK_AWS = command -v aws >/dev/null || { echo "make $@: the AWS CLI (aws) is not installed; nothing was built or changed" >&2; exit 1; }; aws sts get-caller-identity --query Account --output text >/dev/null 2>&1 || { echo "make $@: not signed in to AWS (aws sts get-caller-identity found no valid credentials): sign in, then run again; nothing was built or changed" >&2; exit 1; }
DAY2 = test -x "output/$(ENV)/$(1)" || $(MAKE) --no-print-directory templates

deploy: ## deploy one environment: make deploy ENV=name [REVIEW=1: only create change sets] [ALLOW_REPLACE=stack,...]
	@$(call CHECK_ENV, [REVIEW=1])
	@$(call CHECK_AWS)
	@$(MAKE) --no-print-directory gate
	output/$(ENV)/deploy.sh $(if $(REVIEW),--review)

status: ## every stack of one environment in deploy order: status, drift, last failure: make status ENV=name
	@$(call CHECK_ENV)
	@$(call CHECK_AWS)
	@$(call DAY2,status.sh)
	@output/$(ENV)/status.sh

# Without SERVICE, or with one the environment lacks, logs.sh prints the usage with the environment's
# services and their kinds (no credentials needed for that); the credentials are checked after it.
logs: ## follow one service's log (aws logs tail, CLI v2): make logs ENV=name SERVICE=name [SINCE=1h]
	@$(call CHECK_ENV, SERVICE=name [SINCE=1h])
	@$(call DAY2,logs.sh)
	@SINCE="$(SINCE)" output/$(ENV)/logs.sh $(if $(SERVICE),"$(SERVICE)")

destroy: ## delete one environment's stacks (states what is kept first; asks for ENV typed back): make destroy ENV=name [CONFIRM=name]
	@$(call CHECK_ENV, [CONFIRM=name])
	@$(call CHECK_AWS)
	@$(call DAY2,destroy.sh)
	@CONFIRM="$(CONFIRM)" output/$(ENV)/destroy.sh

schema: $(STAMP) ## write schema/environment.schema.json (editor support) from the settings models
	$(PY) generate.py schema

# generate.py diff exits 3 on changes: an answer, not an error, so make does not print "Error 3".
# It compares with deployed/<env>/, which deploy.sh records and no make target rewrites (output/ is
# rewritten by every build, so a diff against it would be empty after any target); with DEPLOYED_DIR
# set (deploy.sh records there instead), with that folder (--deployed: it may not exist yet, nothing
# deployed), as templates judges updates against it; AGAINST=dir instead (--against: it must exist).
diff: $(STAMP) ## what a build would change against what deploy.sh recorded as deployed (deployed/), a verdict per stack: make diff [ENV=name] [AGAINST=dir]
	@$(PY) generate.py$(if $(AGAINST),,$(if $(DEPLOYED_DIR), --deployed $(DEPLOYED_DIR))) diff $(if $(ENV),--env $(ENV)) $(if $(AGAINST),--against $(AGAINST)) || { status=$$?; test $$status -eq 3 || exit $$status; echo "make diff: changes found (generate.py diff exited 3)"; }

cost: templates ## fixed monthly cost per environment and stack at AWS list prices (AGAINST=dir: what a change costs)
	$(PY) generate.py cost $(if $(AGAINST),--against $(AGAINST))

lint: $(STAMP) ## ruff and mypy on the project's own code
	$(PY) -m ruff check generate.py src templates tests bench
	$(PY) -m ruff format --check generate.py src templates tests bench
	$(PY) -m mypy

# The tool's tests run on its fixture environments (tests/fixtures/environments/), never on yours in
# environments/: your settings are checked by the gate on output/. Two pytest workers (pytest-xdist);
# tests marked with one xdist_group run on the same worker (the checkov tests share one scan).
TEST_JOBS ?= 2
FIXTURES := tests/fixtures/environments

unit: $(STAMP) dot ## the tool's tests, on tests/fixtures/ (TEST_JOBS=2 workers; the slow ones included)
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist loadgroup

unit-fast: $(STAMP) ## the tool's tests without those marked slow, for the inner loop
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist loadgroup -m "not slow"

# The three side by side (each target's output printed whole when it ends): the gate and the tests
# leave cores idle at times (one linter, one scanner, a slow test); together they keep both busy.
test: $(STAMP) dot ## lint, your environments/ built and gated, the tool's tests (on its fixtures)
	@$(MAKE) --no-print-directory -j 3 --output-sync=target lint gate unit

golden: $(STAMP) ## re-record tests/golden/ from the tool's fixtures, tests/fixtures/environments/ (review the diff!)
	$(PY) generate.py --quiet --settings $(FIXTURES) --output tests/golden --diagrams dot

format: $(STAMP) ## format the code with ruff
	$(PY) -m ruff format generate.py src templates tests
	$(PY) -m ruff check --fix generate.py src templates tests

clean: ## remove output/ and the virtual environment
	rm -rf output $(VENV)

.PHONY: help venv templates gate deploy status logs destroy schema diff cost lint unit unit-fast test golden format clean

dot: ## install Graphviz's dot (Debian package graphviz, as root) when it is missing
	@command -v dot >/dev/null || (apt-get update && apt-get install -y graphviz)

diagram: templates ## draw output/<env>/architecture.{dot,svg,png} from the templates (make templates does too)

bench: $(STAMP) ## measure generation (per layer), the gate (per check) and a 100-service environment
	$(PY) bench/bench.py
.PHONY: dot diagram bench
