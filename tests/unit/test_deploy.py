"""The deploy files, checked without a Docker engine or a cluster: compose.yaml, the
Dockerfile, the lock, deploy/kubernetes (structure and names; `make deploy-check` renders and
schema-checks it), and every metric that deploy/prometheus and deploy/grafana name."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

# The one import of the engine's metrics module here (the module may move).
from consumer.ops.metrics import EngineMetrics
from consumer.settings import EngineSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text("utf-8"))
SERVICES: dict[str, Any] = COMPOSE["services"]
ENGINE: dict[str, Any] = SERVICES["engine"]
DOCKERFILE = (ROOT / "Dockerfile").read_text("utf-8")
SETTING_NAMES = {
    str(field.json_schema_extra["env"])  # type: ignore[index]
    for field in EngineSettings.model_fields.values()
}
TOPIC_SETTINGS = (
    "EXECUTION_REQUESTS_TOPIC",
    "EXECUTION_RESULTS_TOPIC",
    "EXECUTION_LOGS_TOPIC",
    "EXECUTION_DEAD_LETTER_TOPIC",
)


def test_the_stack_has_kafka_topics_and_the_engine() -> None:
    assert {"kafka", "topic-init", "engine"} <= set(SERVICES)
    kafka = SERVICES["kafka"]["environment"]
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert "zookeeper" not in SERVICES
    assert "healthcheck" in SERVICES["kafka"]
    assert ENGINE["depends_on"]["topic-init"]["condition"] == "service_completed_successfully"
    assert SERVICES["topic-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_engine_environment_uses_only_real_setting_names() -> None:
    environment = ENGINE["environment"]
    assert set(environment) <= SETTING_NAMES, set(environment) - SETTING_NAMES
    assert environment["EXECUTION_CREATE_TOPICS"] == "false"  # topic-init owns the topics
    EngineSettings(**{_field(name): value for name, value in environment.items()})


def _field(env: str) -> str:
    for name, field in EngineSettings.model_fields.items():
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra["env"] == env:
            return name
    raise KeyError(env)


def test_engine_is_health_checked_on_its_http_port() -> None:
    port = str(ENGINE["environment"]["EXECUTION_HTTP_PORT"])
    check = " ".join(ENGINE["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/healthz" in check
    assert port in [str(p) for p in ENGINE.get("expose", [])]
    assert "ports" not in ENGINE, "a fixed host port would stop `--scale engine=N`"
    assert "container_name" not in ENGINE, "a fixed name would stop `--scale engine=N`"
    drain = float(ENGINE["environment"]["EXECUTION_DRAIN_TIMEOUT_S"])
    assert int(ENGINE["stop_grace_period"].rstrip("s")) > drain


def test_topic_init_creates_every_engine_topic_with_partitions_and_retention() -> None:
    script = "\n".join(SERVICES["topic-init"]["command"])
    assert "--if-not-exists" in script and "--partitions" in script
    for setting in TOPIC_SETTINGS:
        topic = ENGINE["environment"][setting]
        assert re.search(rf"^create {re.escape(topic)} \d+", script, re.MULTILINE), topic
    assert "retention.ms" in script


def test_dockerfile_is_multi_stage_non_root_and_health_checked() -> None:
    stages = re.findall(r"^FROM\s+(\S+)", DOCKERFILE, re.MULTILINE)
    assert len(stages) >= 2
    assert "slim" in DOCKERFILE
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "/healthz" in DOCKERFILE
    assert "COPY --from=build" in DOCKERFILE
    ignored = (ROOT / ".dockerignore").read_text("utf-8").split()
    assert {".git", ".venv", "tests"} <= set(ignored)


# -- the image -------------------------------------------------------------------------------

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
UV_PIN = re.search(r"^UV_VERSION=(\S+)$", (ROOT / "scripts" / "uv").read_text("utf-8"), re.M)


def _base_image() -> str:
    match = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.MULTILINE)
    assert match, "the base image is one ARG, used by both stages"
    return match.group(1)


def test_the_image_base_is_pinned_to_the_python_ci_tests() -> None:
    image = _base_image()
    match = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-bookworm@sha256:[0-9a-f]{64}", image)
    assert match, f"pin a full version and a digest: {image}"
    assert f"{match[1]}.{match[2]}" == PYPROJECT["tool"]["mypy"]["python_version"]
    stages = re.findall(r"^FROM\s+(\S+)", DOCKERFILE, re.MULTILINE)
    assert stages and all(stage.split()[0] == "${PYTHON_IMAGE}" for stage in stages)
    # The Vault stand-in of compose.yaml runs the same interpreter.
    assert SERVICES["vault"]["image"] == image


def test_the_image_installs_exactly_the_lock_and_keeps_no_leftovers() -> None:
    installs = re.findall(r"^RUN uv sync (.*)$", DOCKERFILE, re.MULTILINE)
    assert installs and all("--locked" in line and "--no-dev" in line for line in installs)
    assert f"ARG UV_VERSION={UV_PIN[1] if UV_PIN else '?'}" in DOCKERFILE
    assert "COPY pyproject.toml uv.lock" in DOCKERFILE
    # Nothing copied in to be deleted later (a deleted file still fills its layer).
    assert "/wheels" not in DOCKERFILE and "rm -rf" not in DOCKERFILE
    runtime = DOCKERFILE.rsplit("\nFROM ", 1)[1]
    assert re.findall(r"^COPY .*$", runtime, re.M) == [
        "COPY --from=build --chown=0:0 /opt/engine /opt/engine"
    ]
    assert not re.search(r"^RUN .*\b(pip|uv)\b", runtime, re.MULTILINE), "installs in the runtime"


def test_the_image_runs_as_a_numeric_user_and_carries_oci_labels() -> None:
    user = re.findall(r"^USER\s+(\S+)", DOCKERFILE, re.MULTILINE)[-1]
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), user
    for label in ("title", "version", "revision", "created", "licenses", "vendor"):
        assert f"org.opencontainers.image.{label}=" in DOCKERFILE, label
    assert re.search(r"^HEALTHCHECK .*\n.*/healthz", DOCKERFILE, re.MULTILINE)


# -- the lock --------------------------------------------------------------------------------


def test_make_test_checks_the_lock_and_the_deploy_files() -> None:
    makefile = (ROOT / "Makefile").read_text("utf-8")
    prerequisites = re.search(r"^test:(.*)$", makefile, re.MULTILINE)
    assert prerequisites and {"lock-check", "bootstrap", "deploy-check"} <= set(
        prerequisites[1].split()
    )
    assert "uv lock --check" in makefile and re.search(
        r"^lock:\n\tscripts/uv lock$", makefile, re.M
    )
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text("utf-8")
    assert "sync --locked" in bootstrap
    assert "UV_PYTHON_DOWNLOADS=never" in (ROOT / "scripts" / "uv").read_text("utf-8")
    lock = tomllib.loads((ROOT / "uv.lock").read_text("utf-8"))
    locked = {package["name"] for package in lock["package"]}
    for extra in ("test", "bench", "otel"):
        for requirement in PYPROJECT["project"]["optional-dependencies"][extra]:
            name = re.split(r"[\[<>=~! ;]", requirement, maxsplit=1)[0].lower()
            assert name.replace("_", "-") in locked, f"{name} ({extra}) is not in uv.lock"


# -- Kubernetes ------------------------------------------------------------------------------

KUBE = ROOT / "deploy" / "kubernetes"


def _manifest(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((KUBE / name).read_text("utf-8"))
    return document


def _settings_env() -> dict[str, str]:
    pairs = {}
    for line in (KUBE / "settings.env").read_text("utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key] = value
    return pairs


KUSTOMIZATION = _manifest("kustomization.yaml")
DEPLOYMENT = _manifest("deployment.yaml")
POD = DEPLOYMENT["spec"]["template"]["spec"]
CONTAINER = POD["containers"][0]
SETTINGS_ENV = _settings_env()


def test_kustomization_lists_every_manifest() -> None:
    manifests = {path.name for path in KUBE.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(KUSTOMIZATION["resources"]) == manifests
    kinds = {_manifest(name)["kind"] for name in manifests}
    assert kinds == {
        "Deployment",
        "ServiceAccount",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ScaledObject",
    }
    generated = KUSTOMIZATION["configMapGenerator"][0]
    assert generated["envs"] == ["settings.env"]
    assert CONTAINER["envFrom"] == [{"configMapRef": {"name": generated["name"]}}]


def test_the_configmap_holds_real_settings_the_engine_accepts() -> None:
    assert set(SETTINGS_ENV) <= SETTING_NAMES, set(SETTINGS_ENV) - SETTING_NAMES
    settings = EngineSettings.model_validate(SETTINGS_ENV)  # by the variables' names
    assert settings.requests_topic == SETTINGS_ENV["EXECUTION_REQUESTS_TOPIC"]
    assert SETTINGS_ENV["EXECUTION_CREATE_TOPICS"] == "false"
    secrets = {
        entry["name"]: entry["valueFrom"]["secretKeyRef"]
        for entry in CONTAINER["env"]
        if "secretKeyRef" in entry.get("valueFrom", {})
    }
    assert set(secrets) == {
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
        "VAULT_TOKEN",
        "EXECUTION_STATE_URL",
        "EXECUTION_STATE_ENCRYPTION_KEY",
    }
    assert set(secrets) <= SETTING_NAMES and not set(secrets) & set(SETTINGS_ENV)
    for name, ref in secrets.items():
        assert ref["key"] == name and ref["optional"] is True


def test_the_pod_is_probed_on_the_ops_port_and_outlives_its_drain() -> None:
    port = int(SETTINGS_ENV["EXECUTION_HTTP_PORT"])
    assert CONTAINER["ports"] == [{"name": "ops", "containerPort": port, "protocol": "TCP"}]
    assert CONTAINER["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "ops"}
    assert CONTAINER["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "ops"}
    assert CONTAINER["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}
    drain = float(SETTINGS_ENV["EXECUTION_DRAIN_TIMEOUT_S"])
    assert drain == EngineSettings().drain_timeout_s
    # The drain, then the last transaction (<= 5 s) and the clients' close (<= 5 s each).
    assert POD["terminationGracePeriodSeconds"] >= drain + 20
    assert "replicas" not in DEPLOYMENT["spec"], "KEDA owns the replica count"
    assert CONTAINER["args"] == ["run", "--local-kafka", "never"]


def test_the_pod_runs_locked_down() -> None:
    user = re.findall(r"^USER\s+(\d+):(\d+)", DOCKERFILE, re.MULTILINE)[-1]
    pod, container = POD["securityContext"], CONTAINER["securityContext"]
    assert pod["runAsNonRoot"] is True and container["runAsNonRoot"] is True
    assert (str(pod["runAsUser"]), str(pod["runAsGroup"])) == user
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert POD["automountServiceAccountToken"] is False
    assert POD["serviceAccountName"] == _manifest("serviceaccount.yaml")["metadata"]["name"]
    resources = CONTAINER["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]


def test_service_budget_and_policy_select_the_engine_pods() -> None:
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    assert DEPLOYMENT["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = _manifest("service.yaml")
    assert service["spec"]["selector"].items() <= labels.items()
    assert [port["targetPort"] for port in service["spec"]["ports"]] == ["ops"]
    budget = _manifest("poddisruptionbudget.yaml")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    policy = _manifest("networkpolicy.yaml")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [{"ports": [{"port": "ops", "protocol": "TCP"}]}]
    egress_ports = {port["port"] for rule in policy["egress"] for port in rule["ports"]}
    kafka_port = int(SETTINGS_ENV["KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)[1])
    vault_port = int(SETTINGS_ENV["VAULT_URL"].rsplit(":", 1)[1])
    assert {53, kafka_port, vault_port, 6379, 443} <= egress_ports
    internet = [peer for rule in policy["egress"] for peer in rule["to"] if "ipBlock" in peer]
    assert all("169.254.0.0/16" in peer["ipBlock"]["except"] for peer in internet[:1])


def test_keda_scales_on_the_groups_lag_up_to_the_partition_count() -> None:
    scaled = _manifest("scaledobject.yaml")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    target = spec["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", DEPLOYMENT["metadata"]["name"])
    partitions = int(SETTINGS_ENV["EXECUTION_TOPIC_PARTITIONS"])
    assert partitions == EngineSettings().topic_partitions
    assert spec["maxReplicaCount"] == partitions
    assert 1 <= spec["minReplicaCount"] <= partitions
    [trigger] = spec["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    assert metadata["bootstrapServersFromEnv"] == "KAFKA_BOOTSTRAP_SERVERS"
    assert metadata["consumerGroupFromEnv"] == "EXECUTION_GROUP_ID"
    assert metadata["topicFromEnv"] == "EXECUTION_REQUESTS_TOPIC"
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "EXECUTION_GROUP_ID", "EXECUTION_REQUESTS_TOPIC"):
        assert name in SETTINGS_ENV  # KEDA reads them from the container's environment
    assert int(metadata["lagThreshold"]) > 0
    assert metadata["offsetResetPolicy"] == "earliest"  # as the engine's consumer
    assert all(isinstance(value, str) for value in metadata.values())


# -- Prometheus and Grafana: every metric named exists -------------------------------------

ALERTS: dict[str, Any] = yaml.safe_load(
    (ROOT / "deploy" / "prometheus" / "alerts.yaml").read_text("utf-8")
)
ALERT_TESTS: dict[str, Any] = yaml.safe_load(
    (ROOT / "deploy" / "prometheus" / "alerts.test.yaml").read_text("utf-8")
)
DASHBOARD: dict[str, Any] = json.loads(
    (ROOT / "deploy" / "grafana" / "execution-engine.json").read_text("utf-8")
)
RULES = [rule for group in ALERTS["groups"] for rule in group["rules"]]
# Series Prometheus records itself for every scrape target.
PROMETHEUS_SERIES = {"up"}
_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
_PROMQL_WORDS |= {"and", "or", "unless", "offset", "inf", "nan"}


def exposed_metric_names() -> set[str]:
    """The sample names the engine's /metrics can carry, from its registry's families."""
    names = set()
    for family in EngineMetrics().registry.collect():
        if family.type in ("counter", "info"):
            names.add(family.name + ("_total" if family.type == "counter" else "_info"))
        elif family.type == "histogram":
            names |= {family.name + suffix for suffix in ("_bucket", "_sum", "_count")}
        else:
            names.add(family.name)
    return names


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (strings, label matchers, ranges, label
    lists, functions and keywords left out)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", expr):
        if expr[match.end() :].lstrip().startswith("("):
            continue  # a function
        if match.group().lower() not in _PROMQL_WORDS:
            names.add(match.group())
    return names


def test_the_name_extraction_sees_through_promql() -> None:
    expr = (
        'sum by (error_code) (rate(execution_envelopes_total{status="error", x=~"a|b"}[5m]))'
        " / ignoring (error_code) group_left sum(rate(foo_total[$__rate_interval])) > 0.05"
        " and on () histogram_quantile(0.99, sum by (le) (rate(bar_bucket[5m]))) unless up == 0"
        " or vector(0)"
    )
    assert promql_metric_names(expr) == {
        "execution_envelopes_total",
        "foo_total",
        "bar_bucket",
        "up",
    }


def test_every_metric_the_alerts_and_the_dashboard_name_is_exposed() -> None:
    exposed = exposed_metric_names() | PROMETHEUS_SERIES
    assert {"execution_ready", "execution_circuits", "execution_envelopes_total"} <= exposed
    used: dict[str, set[str]] = {}
    for rule in RULES:
        for name in promql_metric_names(rule["expr"]):
            used.setdefault(name, set()).add(f"alert {rule['alert']}")
    targets = [t for panel in DASHBOARD["panels"] for t in panel.get("targets", [])]
    assert len(targets) >= 20
    for target in targets:
        for name in promql_metric_names(target["expr"]):
            used.setdefault(name, set()).add("dashboard")
    missing = {name: where for name, where in used.items() if name not in exposed}
    assert not missing, f"not on /metrics: {missing}"
    ours = {name for name in exposed if name.startswith("execution_")}
    assert {name for name in used if name.startswith("execution_")} == ours - {
        # Exposed, deliberately charted by their _bucket series only.
        "execution_action_duration_seconds_sum",
        "execution_action_duration_seconds_count",
        "execution_commit_seconds_sum",
    }


def test_the_alerts_cover_what_operators_are_paged_for_and_each_is_tested() -> None:
    names = [rule["alert"] for rule in RULES]
    assert len(names) == len(set(names))
    for required in (
        "ExecutionConsumerLagGrowing",
        "ExecutionErrorRateHigh",
        "ExecutionTransactionFailures",
        "ExecutionCircuitOpen",
        "ExecutionEngineNotReady",
        "ExecutionNoEnvelopes",
    ):
        assert required in names
    for rule in RULES:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
    fired = {
        case["alertname"]
        for test in ALERT_TESTS["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert fired == set(names), set(names) ^ fired
    assert ALERT_TESTS["rule_files"] == ["alerts.yaml"]


def test_the_dashboard_has_the_panels_operators_look_for() -> None:
    titles = " | ".join(panel["title"].lower() for panel in DASHBOARD["panels"])
    for topic in (
        "by action",
        "by code",
        "latency by action",
        "lag per partition",
        "in flight and buffered",
        "fetch paused",
        "transaction latency",
        "cache",
    ):
        assert topic in titles, topic
    variables = {variable["name"] for variable in DASHBOARD["templating"]["list"]}
    assert variables == {"datasource", "instance"}
    for panel in DASHBOARD["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
            assert "[5m]" not in target["expr"], "use $__rate_interval"
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
