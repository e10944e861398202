# Tollgate: `make run` serves the app at http://127.0.0.1:5000, `make test` runs every check.
# Both set up everything first: virtual environment, pinned dependencies, database.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
export PORT
export FLASK_APP := wsgi
# honcho gives each Procfile process a PORT of its own; the worker (which plays Stripe's side in
# sandbox mode) posts webhooks to the web process's URL, so it is named once for both.
TOLLGATE_BASE_URL ?= http://127.0.0.1:$(PORT)
export TOLLGATE_BASE_URL

.PHONY: setup db catalog demo run worker test lint reliability clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Tollgate needs Python 3.11 or newer; set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

setup: $(VENV)/.installed

db: setup
	$(BIN)/flask db upgrade

# Pushes plans.toml to Stripe: the built-in sandbox unless STRIPE_SECRET_KEY is set.
catalog: db
	$(BIN)/flask catalog sync

# A year of made-up customers played through the sandbox's clock (flask sandbox seed-demo), so
# the back office has something to show; about two minutes. It refuses real Stripe (before the
# catalog is pushed there) and a database with customers. Stop `make run` first: the command
# delivers the webhooks itself.
demo: db
	@test -z "$$STRIPE_SECRET_KEY" || \
		{ echo "make demo runs against the built-in Stripe sandbox only, and STRIPE_SECRET_KEY is set."; exit 1; }
	$(BIN)/flask catalog sync
	$(BIN)/flask sandbox seed-demo

# Web (gunicorn) and worker (Huey) from the Procfile; one Ctrl-C stops both. They share one
# folder of metrics, emptied first, so /metrics adds up the web's requests and the worker's tasks.
METRICS_DIR := $(or $(TOLLGATE_INSTANCE_PATH),$(CURDIR)/instance)/metrics
run: catalog
	rm -rf "$(METRICS_DIR)" && mkdir -p "$(METRICS_DIR)"
	PATH="$(CURDIR)/$(BIN):$$PATH" PROMETHEUS_MULTIPROC_DIR="$(METRICS_DIR)" \
		$(BIN)/honcho start --port $(PORT)

# A worker alone: the queue's tasks and the schedule (and, in sandbox mode, the sandbox's clock).
worker: db
	$(BIN)/flask worker

lint: setup
	$(BIN)/ruff check app tests bench gunicorn.conf.py wsgi.py
	$(BIN)/ruff format --check app tests bench gunicorn.conf.py wsgi.py
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

# The reliability suite at full scale (fuzzing, webhook chaos, Stripe faults, concurrency, crash
# safety); `make test` runs it short. Prints its figures at the end; takes several minutes.
reliability: setup
	TOLLGATE_RELIABILITY=full $(BIN)/pytest tests/reliability

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
