# vidpipe: the two commands a newcomer needs are `make up` and `make test` (see README.md).
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/bin:$(PATH)
export KUBECONFIG ?= $(CURDIR)/.local/cluster/kubeconfig

##@ Getting started

.PHONY: up
up: deps tools cluster-up ## Local platform: cluster, S3, MongoDB, chart, API on http://127.0.0.1:8000
	@hack/platform.sh up

.PHONY: down
down: ## Remove the local platform and stop every process it started
	@hack/platform.sh down
	@hack/cluster.sh down

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: deps
deps: ## Install Debian packages and the pinned Python virtualenv (.venv)
	@hack/deps.sh

.PHONY: tools
tools: ## Build pinned Go tools (Kubernetes, helm, versitygw, FerretDB, Kueue) into ~/.cache, link ./bin
	@hack/tools.sh >/dev/null

.PHONY: lint
lint: deps ## ruff (lint + format check), mypy --strict and vulture (dead code)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy common api operator processor dispatcher cli tests bench hack
	$(VENV)/bin/vulture

.PHONY: fmt
fmt: deps ## Format the code with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

##@ Testing

.PHONY: test
test: deps tools lint ## The whole suite: lint, unit, integration and cluster tests (what CI runs)
	@hack/test.sh

.PHONY: test-unit
test-unit: deps ## Unit tests only (no servers, no cluster)
	$(PY) -m pytest -m unit

##@ Benchmarks (not tests; each writes bench/results/<bench>.json)

.PHONY: bench-operator-scale
bench-operator-scale: deps tools cluster-up ## 10,000 VideoJobs on KWOK fake nodes (N=... to change)
	@hack/tools.sh kwok
	@hack/tools.sh postgres
	$(PY) bench/operator_scale.py $(if $(N),--n $(N))

##@ Local cluster

.PHONY: cluster-up
cluster-up: deps tools ## Start etcd, control plane, containerd + kubelet, S3, MongoDB and Kueue (idempotent)
	@hack/cluster.sh up

.PHONY: images
images: ## Build the images (cached by content) and load them into the local cluster
	@hack/images.sh load

.PHONY: manifests
manifests: deps ## Regenerate the CRD (crds/ and the chart's copy) from the Python models
	$(PY) hack/gen_crd.py

.PHONY: cluster-down
cluster-down: ## Stop everything the local cluster started and remove its state (.local/)
	@hack/cluster.sh down

.PHONY: cluster-status
cluster-status: ## What runs, where, and the kubeconfig path
	@hack/cluster.sh status
