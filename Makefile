# Two entry points for a fresh machine (see README):
#   make demo   install into .venv, then run the offline demo (crawl -> classify -> digest)
#   make test   install the test dependencies (Python packages and Debian chromium), run pytest
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Debian packages the tests use for real: a headless browser and fonts for screenshots/charts.
DEBIAN_PACKAGES := chromium fonts-dejavu-core
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test install system-deps bench clean docs

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $(DEBIAN_PACKAGES); }

demo: $(STAMP)
	$(VENV)/bin/stiwatch demo

# docs/commands.md shows every command's --help: rewrite it after changing one.
docs: $(STAMP)
	$(VENV)/bin/cog -r docs/commands.md

test: $(STAMP) system-deps
	$(PY) -m pytest -n 2 --durations=15

bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
