# Genline: `make run` starts the platform and runs a demo job; `make test` runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test test-fast install install-test proto clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch is pinned and installed first, as the CPU build, so that nothing pulls PyPI's build
# with its gigabytes of CUDA wheels: the `+cpu` wheel where pip already finds one (a wheel
# directory or mirror in pip's own configuration), else from PyTorch's CPU index, which
# also serves the plain build for macOS. TORCH_INDEX_URL=…/cu128 installs a CUDA build.
TORCH_VERSION := 2.13.0
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu

# The Python client is its own distribution (clients/python); the `genline jobs` commands use it.
$(VENV)/.installed-all: pyproject.toml clients/python/pyproject.toml | $(PY)
	$(PY) -m pip install --quiet "torch==$(TORCH_VERSION)+cpu" 2>/dev/null \
	  || $(PY) -m pip install --quiet --index-url "$(TORCH_INDEX_URL)" "torch==$(TORCH_VERSION)"
	$(PY) -m pip install --quiet -e ".[all]" -e clients/python
	$(PY) -m services.common.protos
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed-all | $(VENV)/bin/promtool chromium
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

# Debian's chromium, for the console's browser tests (Playwright drives it; it downloads no
# browser of its own). Installed once, when no chromium is on the PATH.
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }

# promtool, for the alert rule tests: unpacked from Debian's prometheus package into the
# venv (no server installed, nothing started).
$(VENV)/bin/promtool: | $(PY)
	tmp=$$(mktemp -d) && cd $$tmp && chmod 755 . \
	  && { apt-get download prometheus 2>/dev/null || { apt-get update -qq && apt-get download prometheus; }; } \
	  && dpkg-deb -x prometheus_*.deb unpacked && cp unpacked/usr/bin/promtool $(CURDIR)/$@; \
	  status=$$?; rm -rf $$tmp; exit $$status

install: $(VENV)/.installed-all

install-test: $(VENV)/.installed-test

# EXIT_AFTER_DEMO=1 stops everything after the demo; the exit code says whether images were delivered.
run: install
	$(PY) -m services.stack $(if $(filter 1 true yes,$(EXIT_AFTER_DEMO)),--exit-after-demo)

test: install-test
	$(PY) -m pytest

# Between edits: everything but the tests that start processes or a browser (a few minutes).
test-fast: install-test
	$(PY) -m pytest -m "not processes"

# gRPC stubs from proto/ into services/_generated (also built on first use when missing).
proto: | $(PY)
	$(PY) -m services.common.protos

clean:
	rm -rf .genline .pytest_cache
