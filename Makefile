# hoga - the two quick-start commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: run test lint fmt check bench bench-quick bench-openapi chaos soak fuzz clean test-deploy check-python-kis

$(STAMP): pyproject.toml constraints.txt
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ./bridge
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)            ## start hoga on embedded defaults (SQLite, paper broker, simulated market)
	$(BIN)/hoga serve

test: $(STAMP)           ## run the test suite (PostgreSQL tests need the local server; CI=true makes that mandatory)
	$(BIN)/pytest

lint: $(STAMP)           ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	MYPYPATH=deploy $(BIN)/mypy --strict --explicit-package-bases deploy/run_deploy.py

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check: lint test

bench: $(STAMP)          ## run every benchmark and print its figures
	$(BIN)/python -m benchmarks

chaos: $(STAMP)         ## kill -9 hoga serve mid-burst: 20 cycles, paper/KIS/Kiwoom fakes, SQLite+PostgreSQL (ARGS="--cycles 4")
	$(BIN)/python -m benchmarks.chaos $(ARGS)

soak: $(STAMP)          ## 20 minutes at 5 orders/s over 10 users + 50 WebSockets; RSS, fds, p99 (ARGS="--minutes 5")
	$(BIN)/python -m benchmarks.soak $(ARGS)

bench-openapi: $(STAMP) ## Kiwoom OpenAPI+ through hoga-bridge on real processes, beside the virtual clock (ARGS="--minutes 3 --pool-size 2")
	$(BIN)/python -m benchmarks.bench_openapi $(ARGS)

test-deploy: $(STAMP)   ## build the container image offline and run it against the local PostgreSQL (root; docker.io, debootstrap)
	$(BIN)/python deploy/run_deploy.py test

PYKIS := .pykis
check-python-kis: $(STAMP)  ## python-kis (a public KIS client, not a dependency) against the KIS fake, per flow
	@test -d $(PYKIS) || $(BIN)/python -m pip install --quiet --disable-pip-version-check --target $(PYKIS) 'python-kis==2.1.6'
	PYTHONPATH=$(PYKIS) $(BIN)/python scripts/check_python_kis.py
	PYTHONPATH=$(PYKIS) $(BIN)/pytest -q -p no:randomly tests/integration/test_python_kis.py

fuzz: $(STAMP)          ## schemathesis against a live hoga serve: >= 5,000 requests, 0 server errors, 0 schema violations (ARGS="--requests 20000")
	$(BIN)/python -m benchmarks.fuzz $(ARGS)

clean:
	rm -rf $(VENV) $(PYKIS) .pytest_cache .mypy_cache .ruff_cache
