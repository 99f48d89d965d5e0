# The README's commands. Each one installs what it needs first (see .ci/setup).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup run test test-fast bench eval lint load

setup:
	.ci/setup run

run: setup
	@if [ -z "$$SANDGATE_API_KEY" ]; then \
	  echo "No SANDGATE_API_KEY set. Get a key with: $(VENV)/bin/sandgate keys create --name me" >&2; \
	  echo "(or start with SANDGATE_API_KEY=<any long secret> make run to seed an admin key)" >&2; \
	fi
	$(VENV)/bin/sandgate serve

test:
	.ci/setup test
	$(VENV)/bin/pytest

# The in-process tests only (no sandbox, no service process, no database or Redis server): < 1 minute.
test-fast:
	.ci/setup run
	$(VENV)/bin/pytest -n auto -m "not sandbox and not docker and not postgres and not slow and not live and not cluster and not redis"

bench:
	.ci/setup test
	$(PY) -m tests.bench

# About a minute of realistic traffic against a local service on real gVisor (locust).
load:
	.ci/setup run
	$(PY) -m tests.load

eval:
	.ci/setup run
	$(PY) -m tests.eval.run

lint:
	$(VENV)/bin/ruff check sandgate sandbox guards tests clients
	$(VENV)/bin/ruff format --check sandgate sandbox guards tests clients
	$(VENV)/bin/mypy
