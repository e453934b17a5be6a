# The two commands of the README, and what they stand on.
#   make dev    run the operator on an embedded local control plane
#   make test   lint, type-check, layer-check, unit and e2e tests (JUnit: build/test-results.xml)
# Both run `make install` first: it is idempotent and does every set-up step
# itself (virtualenv, Python packages, Debian packages, control-plane binaries).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# Debian packages the tests talk to as real peers, and lua5.4, which runs the Argo CD health checks
# (deploy/argocd/) in tests/unit/test_argocd_health.py.
DEBS ?= prometheus-alertmanager prometheus lua5.4 faketime
PYTEST_ARGS ?=
# Arguments of `incidentops dev`, e.g. DEV_ARGS=--with-alertmanager or DEV_ARGS=--quiet.
DEV_ARGS ?=

.PHONY: install venv debs controlplane dev test lint unit e2e bench crds chart-docs chart-files mutation clean

install: venv debs controlplane

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
# kwok and helm from pinned Go modules into ~/.cache/incidentops (skipped when cached),
# and copies there the CRDs of prometheus-operator and cert-manager that the chart's
# tests apply, from those projects' pinned Go modules.
controlplane: venv
	@command -v go >/dev/null || { echo "error: Go is needed to build the control plane (https://go.dev/doc/install)"; exit 1; }
	$(PY) -m incidentops.testing.build
	$(PY) -m incidentops.testing.peer_crds

dev: install
	$(BIN)/incidentops dev $(DEV_ARGS)

lint: venv
	$(BIN)/ruff check operator tests
	$(BIN)/ruff format --check operator tests
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: venv
	$(BIN)/pytest -m "not e2e" $(PYTEST_ARGS)

e2e: install
	$(BIN)/pytest -m e2e $(PYTEST_ARGS)

# One pytest run for unit and e2e tests, so the JUnit report holds both.
test: install lint
	mkdir -p build
	$(BIN)/pytest --junitxml=build/test-results.xml $(PYTEST_ARGS)

# The CRDs, their copy in the chart (its templates include them; a test fails when the two differ),
# and the API reference.
crds: venv
	$(BIN)/incidentops crds --output crds/
	$(BIN)/incidentops crds --output charts/incidentops/files/crds/
	$(BIN)/incidentops crds --docs docs/api.md

# The chart's README.md, from the `# --` comments of its values.yaml (a test fails when it is stale).
chart-docs: venv
	$(PY) -m tests.chartdocs

# The example alert rules the chart installs with metrics.prometheusRule.thresholds (a test fails on drift).
chart-files:
	cp examples/prometheusrules/*.yaml charts/incidentops/files/prometheusrules/

bench: install
	$(BIN)/python -m tests.bench

# Mutation testing of operator/incidentops/domain/ against tests/unit/domain with mutmut (pinned in the
# `mutation` extra, installed here): the score and the survivors in build/mutation/summary.json.
# MUTATION_JOBS mutants at a time; MUTATION_ARGS, e.g. mutant names, go to tests/mutation.py.
MUTATION_JOBS ?= 2
MUTATION_ARGS ?=

mutation: $(VENV)/.installed-mutation
	$(PY) -m tests.mutation --jobs $(MUTATION_JOBS) $(MUTATION_ARGS)

$(VENV)/.installed-mutation: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test,mutation]'
	touch $@

clean:
	rm -rf build mutants .pytest_cache .mypy_cache .ruff_cache .hypothesis
