# The two commands of the README. Both work on a fresh machine: they create .venv first.
.PHONY: run test lint audit bootstrap bench

bootstrap:
	@scripts/bootstrap.sh

# Runs the engine. With no KAFKA_BOOTSTRAP_SERVERS and nothing on localhost:9092, it starts a
# local single-node Kafka (Apache's artifacts from Maven Central, cached) and stops it on exit.
run: bootstrap
	.venv/bin/execution-engine run

# The whole suite: lint, format check, types, unit and integration tests (real Kafka).
test: bootstrap lint audit
	.venv/bin/pytest -q

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

# Known vulnerabilities in the installed packages (pip-audit): a finding fails; an advisory
# service that cannot answer only warns (AUDIT_STRICT=1 makes it fail). See README "Security".
audit: bootstrap
	.venv/bin/python scripts/audit.py

# The benchmarks (not part of `make test`): installs the `bench` extra, then runs every
# scenario. Arguments: make bench ARGS="passthrough --records 20000" (see python -m bench --help).
bench: bootstrap
	.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	.venv/bin/python -m bench $(ARGS)
