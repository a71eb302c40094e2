# The two commands a newcomer needs: `make serve` and `make test`. Both create or refresh
# the virtual environment first, so they work on a fresh machine with only Python 3.11.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
ROOMS ?= rooms
HOST ?= 127.0.0.1
PORT ?= 8000
DB ?= roomc.db
# rooms/ names SAUTIKIT_VOICE_SECRET; without it, `make serve` serves loopback-only with signatures
# off and says so loudly. Set the variable (or UNSIGNED=) to serve verified.
UNSIGNED ?= $(if $(SAUTIKIT_VOICE_SECRET),,--allow-unsigned)
CHROMEDRIVER := /usr/bin/chromedriver

.PHONY: install serve test lint compile bench clean postgresql

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/roomc lint $(ROOMS)
	$(VENV)/bin/roomc compile $(ROOMS) -o build/routes.json
	$(VENV)/bin/roomc db upgrade --db $(DB)
	$(VENV)/bin/roomc serve build/routes.json --host $(HOST) --port $(PORT) --db $(DB) $(UNSIGNED)

# The store tests run against a real PostgreSQL the suite starts itself (tests/pg.py); install
# the server binaries when they are missing, the way CI does, so that half never silently skips.
postgresql:
	@command -v pg_config >/dev/null 2>&1 && [ -x "$$(pg_config --bindir)/initdb" ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql; }

test: $(STAMP) $(CHROMEDRIVER) postgresql
	$(PY) -m pytest -q

# The live room page is tested in Debian's headless Chromium (tests/runtime/test_live_page.py).
$(CHROMEDRIVER):
	$$([ "$$(id -u)" = 0 ] || echo sudo) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $$([ "$$(id -u)" = 0 ] || echo sudo) apt-get install -y -q chromium chromium-driver

lint: $(STAMP)
	$(VENV)/bin/roomc lint $(ROOMS)

compile: $(STAMP)
	$(VENV)/bin/roomc compile $(ROOMS) -o build/routes.json

bench: $(STAMP)
	bash bench/run.sh

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis
