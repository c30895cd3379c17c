# Two commands do everything: `make run` starts the shop, `make test` runs the suite.
# Both create the virtualenv and start PostgreSQL, Redis and Kafka when needed.

VENV      := .venv
PYTHON    := $(VENV)/bin/python
MANAGE    := $(PYTHON) manage.py
SERVICES  := scripts/services.sh
SHOP_BIND ?= 127.0.0.1:8000

.DEFAULT_GOAL := help
.PHONY: help venv constraints services services-down services-status tools test test-fast lint format migrate run demo compose-check bench bench-full

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	@command -v python3 >/dev/null || { echo "error: python3 (3.11+) is required"; exit 1; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt -c constraints.txt
	@touch $@

venv: $(VENV)/.installed  ## create .venv: the runtime (requirements.txt) and the tools (requirements-dev.txt), pinned by constraints.txt

constraints:  ## pin every installed package, transitive ones too, in constraints.txt (after changing a requirements file)
	@{ echo "# Every package of the development virtualenv, pinned: pip install -c constraints.txt."; \
	  echo "# Written by \`make constraints\` after a change to requirements.txt or requirements-dev.txt."; \
	  $(VENV)/bin/pip list --format=freeze --exclude-editable | grep -vE '^(pip|setuptools|wheel)=='; } > constraints.txt

services: venv  ## start PostgreSQL, Redis and Kafka on loopback (idempotent)
	@$(SERVICES) up

services-down:  ## stop the local services
	@$(SERVICES) down

services-status:  ## say which local services run
	@$(SERVICES) status

migrate: services  ## apply database migrations
	$(MANAGE) migrate --noinput

tools:  ## install what the tests use besides the services: docker-compose, chromium + chromium-driver, promtool, the JDK and Kafka jars, the AsyncAPI parser (npm) (idempotent)
	@$(SERVICES) tools

# Three pytest workers (pytest-xdist; the tests wait on processes and services as much as they
# compute, so a third keeps two cores busy), each with its own test database, Kafka namespace, Redis
# prefix and Celery queue (conftest.py); a test module stays on one worker (--dist loadfile),
# so a module's processes start once. TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 3

test: services tools  ## run the whole test suite against the real services (three workers, TEST_WORKERS=N)
	$(PYTHON) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-fast: venv  ## only the tests that need no service (no database, Kafka or Redis): under a minute
	$(PYTHON) -m pytest -m fast $(PYTEST_ARGS)

lint: venv  ## ruff, import rules, mypy, the event contracts against their snapshots (contracts/), docs/asyncapi.yaml current
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports  # the import contracts in pyproject.toml
	$(VENV)/bin/mypy
	$(MANAGE) contracts check  # contracts/ snapshots; docs/backbone.md, Changing a contract
	$(MANAGE) contracts asyncapi --check  # the AsyncAPI document matches the contracts (backbone/asyncapi.py)

format: venv  ## ruff: fix what can be fixed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

compose-check: tools  ## validate docker-compose.yml and its SASL override (needs Debian's docker-compose package)
	docker-compose config -q
	docker-compose -f docker-compose.yml -f docker-compose.sasl.yml config -q

run: migrate  ## start the whole shop (web, relay, consumers, Celery), restarting what dies; Ctrl-C stops it
	$(MANAGE) topics
	$(MANAGE) collectstatic --noinput --verbosity 0
	$(MANAGE) seed_demo
	@echo ""
	@echo "  API docs:  http://$(SHOP_BIND)/api/docs/"
	@echo "  Admin:     http://$(SHOP_BIND)/admin/          (staff / staff-demo-password)"
	@echo "  Health:    http://$(SHOP_BIND)/health/"
	@echo "  Metrics:   http://$(SHOP_BIND)/metrics   (relay :9191, consumers :9192-9195; docs/metrics.md)"
	@echo "  Customer:  alice / alice-demo-password        (tokens above; POST /api/auth/token/)"
	@echo "  Then, in another terminal: make demo"
	@echo ""
	SHOP_BIND=$(SHOP_BIND) PYTHONUNBUFFERED=1 $(PYTHON) scripts/supervise.py --procfile Procfile

demo: venv  ## against a running `make run`: place three orders through the API and tell their stories
	$(MANAGE) demo --url http://$(SHOP_BIND)

BENCH_MODE ?= quick
bench: services  ## benchmarks against same-run baselines (BENCH_MODE=full: longer); JSON in bench/results/
	$(PYTHON) -m bench --mode $(BENCH_MODE) $(BENCH_ARGS)

bench-full:  ## the long benchmark runs (make bench BENCH_MODE=full)
	@$(MAKE) --no-print-directory bench BENCH_MODE=full
