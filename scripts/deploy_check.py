"""Checks deploy/ with the real tools, for `make test` (make deploy-check).

1. `kubectl kustomize deploy/kubernetes` (or `kustomize build`) renders the manifests offline;
   every object is validated against the Kubernetes API's JSON schemas (kubernetes-validate,
   strict: unknown fields fail) for the oldest and the newest Kubernetes version we support.
   KEDA's ScaledObject is a custom resource those schemas do not cover: tests/unit/
   test_deploy.py checks its fields instead.
2. `promtool check rules` and `promtool test rules` on deploy/prometheus/, and every query of
   the Grafana dashboard parsed by promtool too (as recording rules). promtool comes from
   PATH, else from Debian's `prometheus` package, downloaded with `apt-get download` and
   unpacked into the cache (not installed: no Prometheus service is set up or started).

A tool that cannot be had at all (no kubectl or kustomize; no promtool and no apt) skips its
check with a loud message; `DEPLOY_STRICT=1` turns that into a failure. A check that runs and
finds a problem always fails.

Run as `.venv/bin/python scripts/deploy_check.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[1]
KUSTOMIZATION = ROOT / "deploy" / "kubernetes"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "execution-engine.json"
# Grafana's variables, replaced by values Prometheus accepts, so promtool can parse the queries.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$instance": ".*"}
# The oldest Kubernetes the manifests promise to work on, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
# Custom resources (their CRDs come with their operators, not with Kubernetes).
CUSTOM_KINDS = {("keda.sh/v1alpha1", "ScaledObject")}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "puraify-execution-engine"


def strict() -> bool:
    return os.environ.get("DEPLOY_STRICT", "") not in ("", "0")


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)


def skipped(what: str, why: str) -> bool:
    """Report a check that could not run; False (a failure) under DEPLOY_STRICT=1."""
    print(f"deploy-check: {what} NOT CHECKED: {why}", file=sys.stderr)
    return not strict()


# -- Kubernetes ----------------------------------------------------------------------------


def render_kustomization() -> str | None:
    kubectl, kustomize = shutil.which("kubectl"), shutil.which("kustomize")
    if kubectl:
        command = [kubectl, "kustomize", str(KUSTOMIZATION)]
    elif kustomize:
        command = [kustomize, "build", str(KUSTOMIZATION)]
    else:
        return None
    ran = run(command)
    if ran.returncode != 0:
        raise SystemExit(f"deploy-check: {' '.join(command)} failed:\n{ran.stderr}")
    return ran.stdout


def check_kubernetes() -> bool:
    rendered = render_kustomization()
    if rendered is None:
        return skipped("deploy/kubernetes", "neither kubectl nor kustomize is on PATH")
    objects = [doc for doc in yaml.safe_load_all(rendered) if doc]
    failures = []
    for obj in objects:
        kind, api = obj.get("kind"), obj.get("apiVersion")
        name = f"{kind}/{obj.get('metadata', {}).get('name')}"
        if (api, kind) in CUSTOM_KINDS:
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                failures.append(f"{name} (Kubernetes {version}): {exc.message}")
            except kubernetes_validate.SchemaNotFoundError:
                failures.append(f"{name}: no schema for {api} in Kubernetes {version}")
    for failure in failures:
        print(f"deploy-check: {failure}", file=sys.stderr)
    kinds = ", ".join(sorted(str(obj["kind"]) for obj in objects))
    print(
        f"deploy-check: deploy/kubernetes renders {len(objects)} objects ({kinds}); "
        f"schemas of Kubernetes {' and '.join(KUBERNETES_VERSIONS)}: "
        + ("FAILED" if failures else "ok")
    )
    return not failures


# -- Prometheus ----------------------------------------------------------------------------


def find_promtool() -> str | None:
    on_path = shutil.which("promtool")
    if on_path:
        return on_path
    unpacked = cache_dir() / "prometheus-deb" / "usr" / "bin" / "promtool"
    if unpacked.is_file():
        return str(unpacked)
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        return None
    print("deploy-check: fetching promtool (Debian package `prometheus`)", file=sys.stderr)
    with tempfile.TemporaryDirectory() as download:
        fetched = run(["apt-get", "download", "prometheus"], cwd=download)
        if fetched.returncode != 0 and os.geteuid() == 0:
            run(["apt-get", "update"])  # a fresh machine may have no package lists yet
            fetched = run(["apt-get", "download", "prometheus"], cwd=download)
        debs = sorted(Path(download).glob("prometheus_*.deb"))
        if fetched.returncode != 0 or not debs:
            print(f"deploy-check: apt-get download prometheus: {fetched.stderr}", file=sys.stderr)
            return None
        target = unpacked.parents[2]
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        extracted = run(["dpkg-deb", "-x", str(debs[-1]), str(target)])
        if extracted.returncode != 0:
            print(f"deploy-check: dpkg-deb: {extracted.stderr}", file=sys.stderr)
            return None
    return str(unpacked) if unpacked.is_file() else None


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            query = str(target["expr"])
            for variable, value in GRAFANA_VARIABLES.items():
                query = query.replace(variable, value)
            queries.append(query)
    return queries


def check_prometheus() -> bool:
    promtool = find_promtool()
    if promtool is None:
        return skipped("deploy/prometheus", "no promtool, and Debian's package is not reachable")
    ok = True
    with tempfile.TemporaryDirectory() as scratch:
        queries = Path(scratch) / "dashboard-queries.yaml"
        rules = [
            {"record": f"dashboard_query_{i}", "expr": query}
            for i, query in enumerate(dashboard_queries())
        ]
        queries.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
        for what, command in (
            ("check rules", [promtool, "check", "rules", str(ALERTS)]),
            ("test rules", [promtool, "test", "rules", str(ALERT_TESTS)]),
            ("dashboard queries", [promtool, "check", "rules", str(queries)]),
        ):
            ran = run(command, cwd=ALERT_TESTS.parent)
            status = "ok" if ran.returncode == 0 else "FAILED"
            print(f"deploy-check: promtool {what}: {status}")
            if ran.returncode != 0:
                print((ran.stdout + ran.stderr).strip(), file=sys.stderr)
                ok = False
    return ok


def main() -> int:
    results = [check_kubernetes(), check_prometheus()]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
