# The two set-up commands: `make run` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run test test-fast bench lint format install clean

$(STAMP): pyproject.toml $(wildcard client/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	if [ -f client/pyproject.toml ]; then $(BIN)/pip install --quiet -e ./client; fi
	touch $(STAMP)

install: $(STAMP)

# Everything in the Procfile; with REDIS_URL set, that Redis instead of the embedded one.
# honcho gives the first process type (web) the port -p names. honcho stops every process once
# one exits, so IN_VENV_RESPAWN has bin/in-venv start an exited process again instead.
PORT ?= 8000
run: $(STAMP)
	if [ -n "$$REDIS_URL" ]; then \
	  IN_VENV_RESPAWN=1 $(BIN)/honcho start -p $(PORT) web ingest render notify beat; \
	else \
	  REDIS_URL="unix://$(CURDIR)/var/redis.sock" IN_VENV_RESPAWN=1 $(BIN)/honcho start -p $(PORT); \
	fi

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The in-process logic tests (each against a throwaway Redis, no service processes): under a
# minute, for the edit-test loop. `make test` runs them too, with everything else.
FAST_TESTS := $(addprefix tests/test_,api_validation bidi embedded_redis fair_reads full_redis \
  job_index limits metrics parameters pipeline_decisions quotas rate_limit redis_address renderer \
  response_safety secret sentinel_inprocess store store_identity summary)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(addsuffix .py,$(FAST_TESTS)) $(PYTEST_ARGS)

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
