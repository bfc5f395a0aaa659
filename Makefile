# imgpipe — every target sets up what it needs: Python deps (uv, pinned in uv.lock), RabbitMQ
# (used if it answers at RABBITMQ_URL, else installed/started) and SecantusDB (started by the
# tests / the stack when no MongoDB answers at MONGODB_URL).

PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .tools/bin/uv
RUN := $(UV) run --frozen --all-packages
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: install test test-unit test-integration test-e2e test-faults test-containers lint run demo clean broker browser docker asyncapi bench

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

.venv/.synced: $(UV) uv.lock pyproject.toml services/*/pyproject.toml deploy/devtools/pyproject.toml
	$(UV) sync --frozen --all-packages
	touch $@

install: .venv/.synced

broker: install
	$(RUN) python -m imgpipe_dev.infra ensure-rabbitmq

# The dashboard test drives Debian's Chromium (Playwright cannot download browsers here).
browser:
	@command -v chromium >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium || \
		{ $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; }; }

# The container tests need a Docker engine: when none answers, Debian's docker.io is installed
# and dockerd started. The base images (pulled, or stand-ins built from Debian packages where no
# registry answers; cached by tag) are made here, outside the tests' time limits.
docker: install
	$(RUN) python -m imgpipe_dev.standins ensure >/dev/null

test: install broker browser docker
	$(RUN) pytest tests --durations=10

test-unit: install
	$(RUN) pytest tests/unit

test-integration: install broker
	$(RUN) pytest tests/integration

test-e2e: install broker browser
	$(RUN) pytest tests/e2e

# Kills services, the database and a private RabbitMQ node mid-request (part of `make test`).
test-faults: install broker
	$(RUN) pytest tests/faults

# Builds the four images and drives the compose stack from outside (part of `make test`).
test-containers: install docker
	$(RUN) pytest tests/containers --durations=10

lint: install
	$(RUN) ruff check services deploy tests
	$(RUN) ruff format --check services deploy tests
	$(RUN) mypy services/contracts/imgpipe_contracts services/runtime/imgpipe_runtime \
		services/ingest/imgpipe_ingest \
		services/processor/imgpipe_processor services/status/imgpipe_status \
		services/notifier/imgpipe_notifier services/cli/imgpipe_cli deploy/devtools/imgpipe_dev

# Benchmarks the real system against the codec's limit (not part of `make test`; about 5-10
# minutes). BENCH_ARGS=--quick for a smoke run; BENCH_* variables override sizes (bench/README.md).
bench: install broker
	$(RUN) python -m bench $(BENCH_ARGS)

run: install broker
	$(RUN) python -m imgpipe_dev.run

demo: install broker
	$(RUN) python -m imgpipe_dev.demo

# Regenerate docs/asyncapi.yaml from the event models (a unit test fails when it is stale).
asyncapi: install
	$(RUN) python -m imgpipe_dev.asyncapi

clean:
	rm -rf .venv .tools .data .pytest_cache .mypy_cache .ruff_cache
