# Tarifa: the two commands are `make run` and `make test` (see README.md).

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
# The interpreter for .venv: python3.11 (what CI uses) if present, else python3.13, 3.12, or python3 if >= 3.11.
PYTHON ?= $(shell for p in python3.11 python3.13 python3.12 python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
	echo $$p; break; fi; done)
CHROMIUM := /usr/bin/chromium
# pytest-xdist processes for the main suite; browser tests run in their own, serial invocation.
TEST_WORKERS ?= 2
PYTEST_ARGS ?=
# FUZZ=0 leaves out the schemathesis run against the running application (marker fuzz) and the federation
# demo and fault harness (marker once): CI runs them once, on the embedded server, not again on the second PostgreSQL server.
FUZZ ?= 1
MAIN_MARKERS := not browser$(if $(filter 0,$(FUZZ)), and not fuzz and not once)
# pyflakes and pycodestyle errors: what ruff used to check by default (newer ruff enables far more).
RUFF_RULES ?= E4,E7,E9,F
HOME_DIR := $(if $(TARIFA_HOME),$(TARIFA_HOME),.)

.PHONY: help run test test-fast browser-deps pdf-deps radius-deps bench-deps bench lint clean-db messages

help:
	@echo "make run       install if needed, then start Tarifa (web server + job worker) on 127.0.0.1:\$${PORT:-8000}"
	@echo "make test      install test dependencies and Chromium if needed, then run the whole test suite"
	@echo "make bench     run the benchmarks in bench/ (results appended to bench/out/results.jsonl)"
	@echo "make lint      ruff and the import-linter contracts"
	@echo "make clean-db  delete the embedded database ($(HOME_DIR)/var/pgdata): ALL LOCAL DATA"

$(BIN)/python:
	@if [ -z "$(PYTHON)" ]; then echo "Tarifa needs Python >= 3.11 (python3.11 or python3 on PATH)." >&2; exit 1; fi
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changed since the last install.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed

# Translations: .po → .mo compiled in Python (tarifa.kernel.msgfmt), so no GNU gettext is needed.
messages: | $(BIN)/python
	@$(BIN)/python -m tarifa.kernel.msgfmt

# The demo reads phone numbers written without a country code as North American (+1).
run: $(VENV)/.installed pdf-deps messages
	TARIFA_DEFAULT_COUNTRY_CODE=$${TARIFA_DEFAULT_COUNTRY_CODE-1} $(BIN)/tarifa run

# Debian's Chromium drives the browser tests (Playwright never downloads a browser here).
browser-deps:
	@if [ ! -x $(CHROMIUM) ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing Debian's chromium for the browser tests…"; \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get -o DPkg::Lock::Timeout=600 update -qq && \
			apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null; \
		else \
			echo "The browser tests need Chromium at $(CHROMIUM). Install it as root: apt-get install chromium" >&2; \
			exit 1; \
		fi; \
	fi
	@test -x $(CHROMIUM) || { echo "$(CHROMIUM) is still missing after apt-get install chromium." >&2; exit 1; }

# WeasyPrint (invoice PDFs) needs Debian's Pango libraries; installed like Chromium when missing.
# Pango for WeasyPrint, and HarfBuzz's subsetter (without it every PDF logs a warning and subsets fonts slower).
pdf-deps:
	@if ! $(BIN)/python -c "import weasyprint" >/dev/null 2>&1 || ! ldconfig -p 2>/dev/null | grep -q libharfbuzz-subset; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing Pango and HarfBuzz-Subset for WeasyPrint (invoice PDFs)…"; \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get -o DPkg::Lock::Timeout=600 update -qq && \
			apt-get -o DPkg::Lock::Timeout=600 install -y -qq libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 >/dev/null; \
		else \
			echo "Invoice PDFs need Pango and HarfBuzz-Subset: apt-get install libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0" >&2; \
		fi; \
	fi

# radclient (Debian's freeradius-utils): the real RADIUS peer of the AAA tests; FreeRADIUS with rlm_rest
# (freeradius, freeradius-rest): the test of the sample configuration (docs/aaa/freeradius/). Installed like Chromium.
radius-deps:
	@if ! command -v radclient >/dev/null 2>&1 || ! command -v freeradius >/dev/null 2>&1 || \
			! test -e /usr/lib/freeradius/rlm_rest.so; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing Debian's freeradius-utils, freeradius and freeradius-rest for the RADIUS tests…"; \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get -o DPkg::Lock::Timeout=600 update -qq && \
			apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends freeradius-utils freeradius \
				freeradius-rest >/dev/null; \
			systemctl disable --now freeradius >/dev/null 2>&1 || true; \
		else \
			echo "The RADIUS tests need radclient and FreeRADIUS with rlm_rest. Install them as root:" \
				"apt-get install freeradius-utils freeradius freeradius-rest" >&2; \
			exit 1; \
		fi; \
	fi

# FreeRADIUS itself: the baseline of bench/aaa.py (started by the benchmark on its own ports).
bench-deps: radius-deps
	@if ! command -v freeradius >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing Debian's freeradius for the AAA benchmark's baseline…"; \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get -o DPkg::Lock::Timeout=600 update -qq && \
			apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends freeradius >/dev/null; \
			systemctl disable --now freeradius >/dev/null 2>&1 || true; \
		else \
			echo "The AAA benchmark's baseline needs FreeRADIUS: apt-get install freeradius" >&2; \
		fi; \
	fi

# The suite runs in two parts: everything but the browser tests on $(TEST_WORKERS) xdist processes (each has its
# own test database), then the browser tests serially. Both parts always run; exit code 5 ("no tests
# collected", e.g. PYTEST_ARGS selected none of a part) is not a failure.
test: $(VENV)/.installed-test browser-deps pdf-deps radius-deps messages
	@rc1=0; rc2=0; \
	$(BIN)/python -m pytest -m "$(MAIN_MARKERS)" $(if $(filter-out 0 1,$(TEST_WORKERS)),-n $(TEST_WORKERS)) $(PYTEST_ARGS) || rc1=$$?; \
	$(BIN)/python -m pytest -m browser $(PYTEST_ARGS) || rc2=$$?; \
	for rc in $$rc1 $$rc2; do if [ $$rc -ne 0 ] && [ $$rc -ne 5 ]; then exit $$rc; fi; done

# Quicker loop while developing: no browser tests, no dependency checks.
test-fast: messages
	$(BIN)/python -m pytest -m "not browser and not fuzz and not once" $(if $(filter-out 0 1,$(TEST_WORKERS)),-n $(TEST_WORKERS)) $(PYTEST_ARGS)

bench: $(VENV)/.installed bench-deps
	$(BIN)/python -m bench $(BENCH)

lint: $(VENV)/.installed-test
	@if [ -x $(BIN)/ruff ]; then $(BIN)/ruff check --no-cache --select $(RUFF_RULES) src tests bench; else echo "ruff is not installed; skipping it"; fi
	$(BIN)/lint-imports

# Stops the embedded server if it still runs (no `make run` may be using it), then deletes its data.
clean-db:
	@if [ -f $(HOME_DIR)/var/pgdata/postmaster.pid ]; then \
		pg_ctl=$$(ls $(VENV)/lib/python3*/site-packages/pgserver/pginstall/bin/pg_ctl 2>/dev/null | head -n1); \
		if [ -n "$$pg_ctl" ]; then \
			if [ "$$(id -u)" = 0 ]; then runas="runuser -u pgserver --"; else runas=""; fi; \
			$$runas $$pg_ctl -D $(HOME_DIR)/var/pgdata -m fast -w stop >/dev/null 2>&1 || true; \
		fi; \
	fi
	rm -rf $(HOME_DIR)/var/pgdata
	@echo "Deleted $(HOME_DIR)/var/pgdata; the next run starts with an empty database."
