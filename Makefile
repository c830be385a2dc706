# Every target builds .venv itself, so a fresh clone needs only Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# What each target installs into .venv (pyproject.toml's extras):
#   STAMP       .[dev], everything: test, lint, bench, screenshots
#   DEMO_STAMP  .[flask,django,emulator]: the demo (either framework) and its emulator,
#               none of the test tools
STAMP      := $(VENV)/.installed-stamp
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: install demo test test-deps test-django lint screenshots clean

$(STAMP): EXTRAS := dev
$(DEMO_STAMP): EXTRAS := flask,django,emulator
$(STAMP) $(DEMO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

install: $(STAMP)

# make demo PORT=5050 EMULATOR_PORT=5051: other ports than 5000 and 5001.
# make demo FRAMEWORK=django: the same demo served by the Django integration.
# A .venv built for the tests (.[dev]) holds what the demo needs already.
demo: $(if $(wildcard $(STAMP)),$(STAMP),$(DEMO_STAMP))
	$(BIN)/python -m demo$(if $(FRAMEWORK), --framework $(FRAMEWORK))$(if $(PORT), --port $(PORT))$(if $(EMULATOR_PORT), --emulator-port $(EMULATOR_PORT))

# Chromium and PostgreSQL 15 first: installed when missing (as root, apt-get),
# or one message in the first seconds saying what to install.
test-deps:
	$(PYTHON) tools/install_test_deps.py $(PYTEST_ARGS)

test: test-deps $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The Django suites once more on the other supported Django series, in a venv
# of their own (.venv-django-5.2 or .venv-django-6): docs/tests.md.
test-django: test-deps $(STAMP)
	$(BIN)/python tools/django_matrix.py $(PYTEST_ARGS)

.PHONY: bench
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

screenshots: $(STAMP)
	$(PYTHON) tools/install_test_deps.py tests/test_browser.py --db sqlite
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest tests/test_browser.py --db sqlite

lint: $(STAMP)
	$(BIN)/ruff check social_amazon_link pipelines demo tests bench tools
	$(BIN)/ruff format --check social_amazon_link pipelines demo tests bench tools
	$(BIN)/python tools/typecheck.py

clean:
	rm -rf $(VENV) .venv-django-* .pytest_cache .mypy_cache .ruff_cache *.egg-info
