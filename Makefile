# Two entry points a newcomer needs: `make up` runs the platform, `make test` runs the tests.
# Both create .venv and install the pinned dependencies on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

CONSOLE := services/console
# Debian's chromium drives the console's browser tests (Playwright's own browser download fails on these machines);
# the CJK fonts make the Chinese pages' screenshots readable.
CHROMIUM := /usr/bin/chromium

.PHONY: up demo test bench bench-identity clean chromium

# The console's front-end packages (htmx, echarts), pinned by its package-lock.json; reinstalled when the lock changes.
$(CONSOLE)/node_modules/.package-lock.json: $(CONSOLE)/package-lock.json
	cd $(CONSOLE) && npm ci --no-audit --no-fund
	touch $@

chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y chromium fonts-noto-cjk || (apt-get update && apt-get install -y chromium fonts-noto-cjk); \
	  elif command -v sudo >/dev/null; then sudo apt-get install -y chromium fonts-noto-cjk || (sudo apt-get update && sudo apt-get install -y chromium fonts-noto-cjk); \
	  else echo "the console's browser tests need Debian's chromium at $(CHROMIUM): run 'apt-get install -y chromium fonts-noto-cjk' as root" >&2; exit 1; fi; \
	fi

$(BIN)/crm: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/crm

up: $(BIN)/crm $(CONSOLE)/node_modules/.package-lock.json
	$(BIN)/crm up

demo: $(BIN)/crm
	$(BIN)/crm demo

test: $(BIN)/crm $(CONSOLE)/node_modules/.package-lock.json chromium
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
	rm -rf $(VENV) .crm $(CONSOLE)/node_modules
