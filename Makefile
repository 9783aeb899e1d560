# ics-peer-discovery: one entry point for install, tools, lint and tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install lock tools tools-path proto lint test test-unit ci clean
.PHONY: proto-check
.PHONY: image kind-up kind-down status
.PHONY: localnet localnet-down

help:
	@echo "make test        install what is needed and run the whole test suite"
	@echo "make localnet    three clusters on one L2 network, kube-proxy, MetalLB, provider chain,"
	@echo "                 ics-discovery and a consumer chain making blocks (root or user namespaces;"
	@echo "                 LOCALNET_MODE=dial for dial mode)"
	@echo "make localnet-down  stop everything make localnet started (processes, namespaces)"
	@echo "make install     virtualenv + editable install with dev tools (pinned by requirements.lock)"
	@echo "make lock        regenerate requirements.lock from pyproject.toml"
	@echo "make tools       build/install external binaries (cached outside the repo)"
	@echo "make tools-path  print the directory holding those binaries"
	@echo "make lint        ruff (checks and formatting) + mypy strict + import contracts"
	@echo "make ci          install + tools + lint + test"
	@echo "make image       build the service image (needs Docker; IMAGE=name:tag)"
	@echo "make kind-up     three Kind clusters (alice, bob, charlie) with the testnet (needs Docker)"
	@echo "make kind-down   remove the Kind testnet"
	@echo "make status      per cluster: LoadBalancer address, exposed ports, peers per chain"

install: $(STAMP)

# requirements.lock pins every Python dependency (with hashes) to what CI tested;
# `make lock` regenerates it after a change to pyproject.toml's dependencies.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

lock: install
	$(BIN)/pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --allow-unsafe --extra=dev --generate-hashes --no-emit-find-links \
		--strip-extras --output-file=requirements.lock pyproject.toml

tools:
	scripts/tools.sh

tools-path:
	@scripts/tools.sh --path

# Chain protobuf modules: proto/{cosmos,interchain_security} -> chainmonitor/_proto
# (committed; tests/unit/test_generated_protos_are_current.py runs proto-check).
CHAIN_PROTO := --out chainmonitor/_proto --package chainmonitor._proto \
	--pool chainmonitor._proto._pool:POOL proto/cosmos proto/interchain_security
# The service's own API: proto/ics -> discovery/_proto.
API_PROTO := --out discovery/_proto --package discovery._proto \
	--pool discovery._proto._pool:POOL proto/ics

proto: install
	$(BIN)/python scripts/gen_protos.py $(CHAIN_PROTO)
	$(BIN)/python scripts/gen_protos.py $(API_PROTO)

proto-check: install
	$(BIN)/python scripts/gen_protos.py --check $(CHAIN_PROTO)
	$(BIN)/python scripts/gen_protos.py --check $(API_PROTO)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: install tools
	ICS_TOOLS_BIN="$$(scripts/tools.sh --path)" $(BIN)/pytest

test-unit: install
	$(BIN)/pytest tests/unit

ci: install tools lint test

# Local testnet without Docker: state and logs under ./localnet/ (scripts/localnet.py).
LOCALNET_MODE ?= restart
localnet: install tools
	ICS_TOOLS_BIN="$$(scripts/tools.sh --path)" $(BIN)/python scripts/localnet.py up --mode $(LOCALNET_MODE)

localnet-down:
	$(BIN)/python scripts/localnet.py down

# Kind testnet (scripts/clusters/): needs Docker, kind, kubectl and Helm on PATH.
IMAGE ?= ics-discovery:dev

image:
	scripts/clusters/image.sh $(IMAGE)

kind-up: install
	scripts/tools.sh ics
	scripts/clusters/kind-up.sh

kind-down:
	scripts/clusters/kind-down.sh

status: install
	@scripts/clusters/status.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
