# Two entry points a newcomer needs: `make up` runs the platform, `make test` runs the tests.
# Both create .venv and install the pinned dependencies on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: up demo test bench bench-identity clean

$(BIN)/crm: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/crm

up: $(BIN)/crm
	$(BIN)/crm up

demo: $(BIN)/crm
	$(BIN)/crm demo

test: $(BIN)/crm
	$(BIN)/ruff check .
	$(BIN)/pytest

bench: $(BIN)/crm
	$(BIN)/crm bench identity
	$(BIN)/crm bench loyalty
	$(BIN)/crm bench alerts
	$(BIN)/crm bench campaigns

bench-identity: $(BIN)/crm
	$(BIN)/crm bench identity

clean:
	rm -rf $(VENV) .crm
