"""Kafka authentication and TLS from the environment, against a real broker with SASL listeners.

The broker (consumer/localkafka with SaslListeners) offers SASL_PLAINTEXT and SASL_SSL, each
with PLAIN and SCRAM-SHA-512; the SCRAM user is created by Kafka's storage tool at format time.
Its certificate comes from a CA made here (trustme), handed to the engine as KAFKA_SSL_CAFILE.
The engine authenticates and processes a request over each; wrong credentials and an untrusted
certificate stop `execution-engine run` at once with exit status 2 and a message naming the
settings to fix, and never print the password.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr

from consumer.broker.preflight import check_kafka_settings
from consumer.localkafka import LocalKafka, SaslListeners
from tests.integration.conftest import Topics, engine_settings, running_engine
from tests.integration.kafka_io import Outgoing, create_topic, produce, read_topic
from tests.integration.test_cli import COMMAND, cli_env

USER = "engine"
PASSWORD = "engine-kafka-pw-4c1b9a55"


@dataclass(frozen=True)
class SecuredBroker:
    broker: LocalKafka
    cafile: Path
    foreign_cafile: Path  # a CA that did not sign the broker's certificate


def keystore(ca: trustme.CA, path: Path) -> Path:
    """The broker's key (PKCS#8, as Kafka's PEM keystore wants it) and certificate chain."""
    issued = ca.issue_cert("127.0.0.1", "localhost")
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), password=None)
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pkcs8 + b"".join(pem.bytes() for pem in issued.cert_chain_pems))
    return path


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    tmp = tmp_path_factory.mktemp("kafka-tls")
    ca, foreign = trustme.CA(), trustme.CA()
    cafile, foreign_cafile = tmp / "ca.pem", tmp / "foreign-ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    foreign.cert_pem.write_to_path(str(foreign_cafile))
    sasl = SaslListeners(users={USER: PASSWORD}, keystore_pem=keystore(ca, tmp / "broker.pem"))
    with LocalKafka(sasl=sasl) as broker:
        yield SecuredBroker(broker, cafile, foreign_cafile)


@pytest.mark.parametrize(
    ("protocol", "mechanism"),
    [
        ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
        ("SASL_PLAINTEXT", "PLAIN"),
        ("SASL_SSL", "SCRAM-SHA-512"),
        ("SASL_SSL", "PLAIN"),
    ],
)
async def test_the_engine_authenticates_and_processes_a_request(
    secured: SecuredBroker, topics: Topics, protocol: str, mechanism: str
) -> None:
    broker = secured.broker
    tls = protocol == "SASL_SSL"
    settings = engine_settings(
        broker.sasl_ssl_bootstrap_servers if tls else broker.sasl_bootstrap_servers,
        topics,
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        sasl_username=USER,
        sasl_password=SecretStr(PASSWORD),
        ssl_cafile=str(secured.cafile) if tls else None,
    )
    await check_kafka_settings(settings)  # the CLI's start-up check passes
    # The test itself talks to the same broker over its plain listener.
    plain = broker.bootstrap_servers
    await create_topic(plain, topics.requests)
    async with running_engine(settings):
        body = {"request_id": "auth-1", "action": "log_message", "project": "p"}
        await produce(
            plain, topics.requests, [Outgoing.request({**body, "params": {"message": "hi"}})]
        )
        results = await read_topic(plain, topics.results, expect=1, timeout_s=60)
    assert [json.loads(r.value)["status"] for r in results] == ["success"]


def run_engine(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    ran = subprocess.run(
        [*COMMAND, "run", "--local-kafka", "never"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    # "At start-up": well before any consumer-group or request timeout would have fired.
    assert time.monotonic() - started < 30, "the refusal took too long to surface"
    return ran


def secured_env(secured: SecuredBroker, topics: Topics, **values: str) -> dict[str, str]:
    env = cli_env(secured.broker.sasl_bootstrap_servers, topics)
    env.update({"KAFKA_SASL_USERNAME": USER, "KAFKA_SASL_PASSWORD": PASSWORD})
    env.update(values)
    return env


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_wrong_credentials_stop_the_engine_at_start_up(
    secured: SecuredBroker, topics: Topics, mechanism: str
) -> None:
    wrong = "not-the-password-5e2f"
    env = secured_env(
        secured,
        topics,
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        KAFKA_SASL_MECHANISM=mechanism,
        KAFKA_SASL_PASSWORD=wrong,
    )
    ran = run_engine(env)
    assert ran.returncode == 2, ran.stderr
    assert "refused to authenticate user 'engine'" in ran.stderr
    assert f"SASL {mechanism}" in ran.stderr and "KAFKA_SASL_PASSWORD" in ran.stderr
    assert wrong not in ran.stderr + ran.stdout
    assert '"engine.kafka_refused"' in ran.stdout  # also as a log event for log pipelines
    assert '"engine.started"' not in ran.stdout


def test_an_untrusted_broker_certificate_stops_the_engine_at_start_up(
    secured: SecuredBroker, topics: Topics
) -> None:
    env = secured_env(
        secured,
        topics,
        KAFKA_BOOTSTRAP_SERVERS=secured.broker.sasl_ssl_bootstrap_servers,
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        KAFKA_SSL_CAFILE=str(secured.foreign_cafile),
    )
    ran = run_engine(env)
    assert ran.returncode == 2, ran.stderr
    assert "is not trusted" in ran.stderr and "KAFKA_SSL_CAFILE" in ran.stderr
    assert PASSWORD not in ran.stderr + ran.stdout


@pytest.mark.parametrize("argv", [["send", "log_message", "--project", "p"], ["tail", "results"]])
def test_wrong_credentials_stop_a_command_in_one_line(
    secured: SecuredBroker, topics: Topics, argv: list[str]
) -> None:
    wrong = "not-the-password-77aa"
    env = secured_env(
        secured,
        topics,
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        KAFKA_SASL_PASSWORD=wrong,
    )
    ran = subprocess.run(
        [*COMMAND, *argv], env=env, capture_output=True, text=True, timeout=90, check=False
    )
    assert ran.returncode == 2, ran.stderr
    [line] = ran.stderr.splitlines()
    assert line.startswith(f"execution-engine {argv[0]}: Kafka at ")
    assert "refused to authenticate user 'engine'" in line and "KAFKA_SASL_PASSWORD" in line
    assert wrong not in ran.stderr + ran.stdout
