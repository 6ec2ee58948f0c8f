# Two entry points for a fresh machine: `make serve` (the study site) and `make test`.
# Each target sets up what it needs first, so either works on a clean clone.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup setup-test serve build test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# torch is pinned in pyproject.toml to the exact CPU wheel (torch==2.13.0).
# The site's browser libraries (KaTeX, force-graph) come from npm into kb/assets/vendor/.
setup: $(BIN)/python
	$(BIN)/pip install -e '.[test]'
	$(BIN)/python -m kb.site_assets

# Browser tests drive Debian's Chromium; install it when it is missing (needs root).
setup-test: setup
	@command -v chromium >/dev/null || { apt-get update && apt-get install -y chromium fonts-dejavu-core; }

serve: setup
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

build: setup
	$(BIN)/mkdocs build --strict

test: setup-test
	$(BIN)/python -m pytest

clean:
	rm -rf site .kb .pytest_cache test-artifacts
