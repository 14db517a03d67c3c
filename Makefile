# The two commands of the README. Both work on a fresh machine: they create .venv first, from
# uv.lock (scripts/bootstrap.sh; uv itself is pinned in scripts/uv).
.PHONY: run test lint audit bootstrap bench lock lock-check deploy-check docs

bootstrap:
	@scripts/bootstrap.sh

# Runs the engine. With no KAFKA_BOOTSTRAP_SERVERS and nothing on localhost:9092, it starts a
# local single-node Kafka (Apache's artifacts from Maven Central, cached) and stops it on exit.
# Its data is kept across runs (the engine says where); `make run ARGS=--fresh` starts clean.
run: bootstrap
	.venv/bin/execution-engine run $(ARGS)

# The whole suite: the lock, lint, format check, types, the audit, the deploy files, unit and
# integration tests (real Kafka).
test: lock-check bootstrap lint audit deploy-check
	.venv/bin/pytest -q

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

# Re-resolves uv.lock after a dependency changed in pyproject.toml (commit both). To move one
# package to its newest allowed version: scripts/uv lock --upgrade-package NAME.
lock:
	scripts/uv lock

# Fails when uv.lock no longer matches pyproject.toml (run `make lock`).
lock-check:
	@scripts/uv lock --check --quiet || { echo "uv.lock is stale: run 'make lock' and commit uv.lock" >&2; exit 1; }

# Known vulnerabilities in the installed packages (pip-audit): a finding fails; an advisory
# service that cannot answer only warns (AUDIT_STRICT=1 makes it fail). See README "Security".
audit: bootstrap
	.venv/bin/python scripts/audit.py

# deploy/: the Kubernetes manifests rendered (kustomize) and schema-checked, the Prometheus
# rules checked and unit-tested (promtool). Tools: see scripts/deploy_check.py.
deploy-check: bootstrap
	.venv/bin/python scripts/deploy_check.py

# The benchmarks (not part of `make test`): syncs the `bench` and `otel` extras too, then runs
# every scenario. Arguments: make bench ARGS="passthrough --records 20000" (python -m bench --help).
bench:
	@BOOTSTRAP_EXTRAS=test,bench,otel scripts/bootstrap.sh
	.venv/bin/python -m bench $(ARGS)

# docs/configuration.md's reference, regenerated from the settings models (tests/unit/test_docs.py
# fails while it is stale).
docs: bootstrap
	.venv/bin/python scripts/config_docs.py
