# Tollgate: `make run` serves the app at http://127.0.0.1:5000, `make test` runs every check.
# Both set up everything first: virtual environment, pinned dependencies, database.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
export PORT
export FLASK_APP := wsgi

.PHONY: setup db catalog run test lint reliability clean

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

run: catalog
	$(BIN)/flask run --host 127.0.0.1 --port $(PORT)

lint: setup
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench
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
