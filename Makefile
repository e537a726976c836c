# The virtual environment lives in .venv/ and is (re)built when a pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all venv run up test test-fast lint typecheck format bench system-deps clean image e2e-chart fuzz

all: test

$(STAMP): pyproject.toml devtools/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]' -e devtools
	@touch $(STAMP)

venv: $(STAMP)

## Start combo mode on 127.0.0.1:6060 (API) and :8089 (introspection), with an embedded PostgreSQL.
run: $(STAMP)
	CLAIR_HTTP_LISTEN_ADDR=$${CLAIR_HTTP_LISTEN_ADDR:-127.0.0.1:6060} \
	CLAIR_INTROSPECTION_ADDR=$${CLAIR_INTROSPECTION_ADDR:-127.0.0.1:8089} \
	$(BIN)/python -m clair_dev.run --data .clair serve --mode combo $(if $(CONFIG),--config $(CONFIG))

## Distributed on this machine: embedded PostgreSQL, 2 indexers and a matcher behind NGINX on :6060.
up: $(STAMP) system-deps
	$(BIN)/python -m clair_dev.up --data .clair-up $(if $(CONFIG),--config $(CONFIG)) \
		$(if $(INDEXERS),--indexers $(INDEXERS)) $(if $(MATCHERS),--matchers $(MATCHERS))

## System tools the tests need (PostgreSQL server, dpkg, ...); installed when running as root with apt.
system-deps:
	@$(BIN)/python -m clair_dev.sysdeps 2>/dev/null || $(PYTHON) devtools/clair_dev/sysdeps.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP) system-deps lint
	$(BIN)/pytest -q -m "not slow"

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow" -x

## Container image (deploy/Dockerfile) built offline with buildah on a debootstrapped Debian.
image: $(STAMP)
	$(BIN)/python deploy/image.py

## The Helm chart run as a cluster would (slow): its pods from the image, behind NGINX.
e2e-chart: image system-deps
	$(BIN)/pytest -q -m slow tests/deploy/test_chart_e2e.py

## Schemathesis against the server's own OpenAPI document (combo on a throwaway embedded PostgreSQL).
fuzz: $(STAMP) system-deps
	$(BIN)/python -m clair_dev.fuzz

bench: $(STAMP)
	@for b in bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .clair .clair-up .mypy_cache .ruff_cache .pytest_cache
