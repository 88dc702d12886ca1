# gradecast: two commands set everything up on a fresh machine with Python 3.11+.
#   make run   serve on http://127.0.0.1:8000 with the embedded SQLite database
#   make test  the whole test suite, ruff, mypy and Biome (the dashboard's JavaScript)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint lint-js typecheck pytest migrate stress docker-test compose-test bench wrk clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The one C module (app/tables/_pupiljson.c) is compiled by the install: again when it changes.
NATIVE := app/tables/_pupiljson.c

$(VENV)/.installed: $(BIN)/python pyproject.toml $(NATIVE)
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml $(NATIVE)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/gradecast migrate
	$(BIN)/gradecast serve --host $(HOST) --port $(PORT)

migrate: $(VENV)/.installed
	$(BIN)/gradecast migrate

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check app tests bench alembic scripts
	$(BIN)/ruff format --check app tests bench alembic scripts
	$${CC:-cc} -fsyntax-only -std=c11 -Wall -Wextra -Werror \
		-I"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" $(NATIVE)

# Biome, pinned in package-lock.json, installed again whenever package.json or the lock changes.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

lint-js: node_modules/.installed
	node_modules/.bin/biome ci app/static

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

pytest: $(VENV)/.installed-dev
	$(BIN)/pytest

test: lint lint-js typecheck pytest

stress: $(VENV)/.installed-dev
	$(BIN)/pytest -m slow

# The load generator of bench/predict.py, from the distribution (Debian/Ubuntu).
wrk:
	command -v wrk || apt-get install -y wrk

# MLServer, bench/predict.py's peer for batches, pins FastAPI < 0.116 (gradecast needs >= 0.142):
# a venv of its own (optional; the bench says when it is missing).
.venv-mlserver/bin/mlserver:
	$(PYTHON) -m venv .venv-mlserver
	.venv-mlserver/bin/pip install --quiet "mlserver>=1.7,<2" "mlserver-sklearn>=1.7,<2"

bench: $(VENV)/.installed-dev wrk
	$(BIN)/python bench/train.py
	$(BIN)/python bench/coverage.py
	$(BIN)/python bench/upload.py
	$(BIN)/python bench/history.py
	$(BIN)/python bench/predict.py
	$(BIN)/python bench/fairness.py
	$(BIN)/python bench/load.py --backend sqlite
	$(BIN)/python bench/load.py --backend postgres

docker-test:
	bash scripts/docker-test.sh

compose-test: $(VENV)/.installed-dev
	$(BIN)/python scripts/compose_test.py

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache
