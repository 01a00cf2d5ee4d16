# Every target bootstraps .venv itself, so a fresh clone needs only `make run` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test check fmt bench screenshots image clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

# /docs serves the official TS 29.538 document when the 3GPP files are beside the checkout.
OFFICIAL_3GPP := $(wildcard $(abspath ../shared/3gpp)/TS29538_MSGS_ASRegistration.yaml)

run: $(STAMP)
	$(if $(OFFICIAL_3GPP),ASGATE_DOCS_3GPP_DIR="$${ASGATE_DOCS_3GPP_DIR:-$(dir $(OFFICIAL_3GPP))}") $(BIN)/asgate up --samples

check: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

test: check
	$(BIN)/pytest -n 2 --dist loadgroup

BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py

# docs/images/login-phone*.png: the login page at 360x740, light and dark (needs chromium).
screenshots: $(STAMP)
	$(BIN)/python -m tests.idm.screenshots

# The OCI image (deploy/Containerfile) with docker or podman; `make test` never needs either.
CONTAINER ?= $(shell command -v docker || command -v podman)
IMAGE     ?= asgate:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

image:
	@test -n "$(CONTAINER)" || { echo "make image needs docker or podman"; exit 1; }
	$(CONTAINER) build -f deploy/Containerfile -t $(IMAGE) .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
