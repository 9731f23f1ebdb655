# dairi: two commands do all the set-up on a fresh machine.
#   make run   set up what is missing, then serve on 127.0.0.1:8080
#              (make run PORT=8081 HOST=0.0.0.0: elsewhere; challenges name that address)
#   make test  set up what is missing, type-check (mypy), then run the whole test suite
#   make lock  re-pin requirements.lock (the deployments' dependencies, with hashes)
# Both are idempotent: a second run reuses the virtualenv, token, PKI and database.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# SoftHSM2 is the embedded HSM; IPA Gothic renders the Japanese sample bid;
# opensc-pkcs11's pkcs11-spy counts the PKCS#11 logins the HSM fault tests make;
# poppler-utils (pdftotext, pdfsig, pdfdetach) and qpdf read back the PDFs dairi draws and signs;
# xmlsec1 checks the XAdES signatures (an independent verifier).
SYSTEM_PACKAGES := softhsm2 fonts-ipafont-gothic opensc-pkcs11 poppler-utils qpdf openssl xmlsec1 \
  chromium
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
# Where make run serves; public_base_url follows unless configured (config/default.toml).
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test typecheck lint lock bench demo setup system-packages clean

run: setup
	$(BIN)/dairi serve --host $(HOST) --port $(PORT)

test: setup
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

# The packages and settings are [tool.mypy] in pyproject.toml.
typecheck: $(BIN)/.installed
	$(BIN)/mypy

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# requirements.lock: every runtime dependency pinned with its hashes, resolved from
# pyproject.toml for any platform on Python >= 3.11. A re-run keeps the pins that still
# satisfy pyproject.toml; `make lock LOCK_ARGS=--upgrade` moves them to the newest.
lock: | $(BIN)/python
	$(BIN)/python -m pip install -q 'uv>=0.13,<0.14'
	$(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 \
	  --generate-hashes --custom-compile-command 'make lock' $(LOCK_ARGS) -o requirements.lock

bench: setup
	$(BIN)/python bench/pades.py
	$(BIN)/python bench/mandates.py
	$(BIN)/python bench/signing.py
	$(BIN)/python bench/verify.py
	$(BIN)/python bench/console.py

demo: setup
	$(BIN)/dairi demo --out demo-out

setup: system-packages $(BIN)/.installed
	$(BIN)/dairi init

system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" \
	    || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the dependency list changes. The runtime dependencies come
# pinned from requirements.lock, as a deployment gets them; the test tools from pyproject.
$(BIN)/.installed: pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --require-hashes -r requirements.lock
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) var demo-out
