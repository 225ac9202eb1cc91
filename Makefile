# Set-up and entry points. `make demo` and `make test` work on a fresh Debian/Ubuntu machine with Python 3.11.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= work/demo

.PHONY: setup java clamav demo test lint clean

$(BIN)/stackv2: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 (apt-get install python3.11 python3.11-venv) or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

java:
	@bash scripts/ensure-java.sh

# ClamAV for the malware scan (docs/malware.md): setup goes on without it; the scan then cannot be enabled and
# its tests skip.
clamav:
	@bash scripts/ensure-clamav.sh || true

# The JVM class archive (pipelines/class_archive.py) only speeds up Spark's start: setup goes on without it.
$(VENV)/.class-archive: $(BIN)/stackv2 | java
	@$(BIN)/stackv2 class-archive --force && touch $@ || echo "warning: no JVM class archive; Spark starts without it"

setup: java clamav $(BIN)/stackv2 $(VENV)/.class-archive

demo: setup
	$(BIN)/stackv2 demo --out $(DEMO_OUT)

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf work .pytest_cache .ruff_cache
