# The two set-up commands: `make run` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run test bench lint format install clean

$(STAMP): pyproject.toml $(wildcard client/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	if [ -f client/pyproject.toml ]; then $(BIN)/pip install --quiet -e ./client; fi
	touch $(STAMP)

install: $(STAMP)

# Everything in the Procfile; with REDIS_URL set, that Redis instead of the embedded one.
# honcho gives the first process type (web) the port -p names.
PORT ?= 8000
run: $(STAMP)
	if [ -n "$$REDIS_URL" ]; then \
	  $(BIN)/honcho start -p $(PORT) web ingest render notify beat; \
	else \
	  REDIS_URL="unix://$(CURDIR)/var/redis.sock" $(BIN)/honcho start -p $(PORT); \
	fi

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	node --check api/static/progress.js  # syntax only: no JS linter to install

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var artifacts
