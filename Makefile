# Genline: `make run` starts the platform and runs a demo job; `make test` runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test test-fast install install-test proto clean lock audit docs

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch is pinned and installed first, as the CPU build, so that nothing pulls PyPI's build
# with its gigabytes of CUDA wheels: the `+cpu` wheel where pip already finds one (a wheel
# directory or mirror in pip's own configuration), else from PyTorch's CPU index, which
# also serves the plain build for macOS. TORCH_INDEX_URL=…/cu128 installs a CUDA build.
TORCH_VERSION := 2.13.0
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu

# Every other package comes from the locked set: requirements/run.lock (the platform) and
# requirements/test.lock (and what the tests need), each package pinned with the hashes of
# its files, resolved for CPython 3.11 on Linux x86_64 (where the platform, its images and
# CI run); pip refuses a file whose hash is not in the lock. `make lock` resolves them again
# from pyproject.toml; LOCKED=0 installs from pyproject.toml's ranges instead (another
# platform). torch, pinned above, is installed on its own (its CPU build is not on PyPI).
LOCKED ?= 1
define install_locked
	$(if $(filter 1,$(LOCKED)),$(PY) -m pip install --quiet --require-hashes --no-deps -r $(1),$(PY) -m pip install --quiet -e ".[$(2)]")
endef
define install_torch
	$(PY) -m pip install --quiet --no-deps "torch==$(TORCH_VERSION)+cpu" 2>/dev/null \
	  || $(PY) -m pip install --quiet --no-deps --index-url "$(TORCH_INDEX_URL)" "torch==$(TORCH_VERSION)"
endef

# The Python client is its own distribution (clients/python); the `genline jobs` commands use it.
$(VENV)/.installed-all: pyproject.toml clients/python/pyproject.toml requirements/run.lock | $(PY)
	$(call install_locked,requirements/run.lock,all)
	$(install_torch)
	$(PY) -m pip install --quiet --no-deps -e . -e clients/python
	$(PY) -m services.common.protos
	touch $@

$(VENV)/.installed-test: pyproject.toml requirements/test.lock $(VENV)/.installed-all | $(VENV)/bin/promtool chromium
	$(call install_locked,requirements/test.lock,test)
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
# SUBJECT_DEMO=1 adds a headshot order of a subject to the demo (its identity trained: about a minute more).
# The documentation site is built first (make docs), so the platform serves it at /docs/.
run: install docs
	$(PY) -m genline_stack $(if $(filter 1 true yes,$(EXIT_AFTER_DEMO)),--exit-after-demo) \
		$(if $(filter 1 true yes,$(SUBJECT_DEMO)),--subject-demo)

# The suite on TEST_WORKERS workers (pytest-xdist), each with a stack of its own: most tests
# wait on the servers more than they compute, so three workers keep two cores busy; the tests
# that start stacks of their own run one after another on one of them (tests/conftest.py).
TEST_WORKERS ?= 3
test: install-test
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

# Between edits: everything but the tests that start processes or a browser (a few minutes).
test-fast: install-test
	$(PY) -m pytest -m "not processes"

# The documentation site (mkdocs.yml, docs/) into site/, in strict mode: a broken link, a
# missing page or a missing example fails it. `make run` builds it and serves it at /docs/.
# Its packages are locked in requirements/docs.lock (and in the test set: the suite builds it).
$(VENV)/.installed-docs: pyproject.toml requirements/docs.lock $(VENV)/.installed-all
	$(call install_locked,requirements/docs.lock,docs)
	touch $@

docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	@echo "the documentation site is in site/ (open site/index.html, or http://127.0.0.1:8000/docs/ under make run)"

# requirements/*.lock again from pyproject.toml: the newest versions its ranges allow, with
# torch's CPU build (so that none of PyPI's CUDA packages enter the lock), found where pip
# finds wheels (PIP_FIND_LINKS) or on PyTorch's CPU index.
LOCK_OPTIONS = --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header --quiet \
  --no-emit-package torch --override requirements/torch-cpu.txt --index-strategy unsafe-best-match \
  $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS),--extra-index-url $(TORCH_INDEX_URL))
lock: install-test
	echo "torch==$(TORCH_VERSION)+cpu" > requirements/torch-cpu.txt
	$(VENV)/bin/uv pip compile pyproject.toml clients/python/pyproject.toml --extra all --extra test $(LOCK_OPTIONS) \
	  -o requirements/test.lock
	$(VENV)/bin/uv pip compile pyproject.toml clients/python/pyproject.toml --extra all -c requirements/test.lock \
	  $(LOCK_OPTIONS) -o requirements/run.lock
	$(VENV)/bin/uv pip compile requirements/build.in -c requirements/test.lock $(LOCK_OPTIONS) -o requirements/build.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra docs -c requirements/test.lock $(LOCK_OPTIONS) -o requirements/docs.lock
	for service in ingest ledger router scorer delivery; do \
	  $(VENV)/bin/uv pip compile pyproject.toml --extra $$service -c requirements/test.lock $(LOCK_OPTIONS) \
	    -o requirements/$$service.lock || exit 1; \
	done

# The locked set against PyPI's vulnerability data (pip-audit): exits 1 on a known
# vulnerability, and on a package it could not check (no answer from PyPI is no pass).
audit: install-test
	$(PY) -m pip_audit --strict --disable-pip --require-hashes --progress-spinner off -r requirements/test.lock

# gRPC stubs from proto/ into services/common/_generated (also built on first use when missing).
proto: | $(PY)
	$(PY) -m services.common.protos

clean:
	rm -rf .genline .pytest_cache site
