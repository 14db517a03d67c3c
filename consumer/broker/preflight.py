"""Start-up check of the Kafka connection settings.

aiokafka reports a refused password or an untrusted broker certificate as "Unable to bootstrap",
the same words as a broker that is simply down. This check opens one connection the way every
client of the engine will (protocol, TLS, SASL) and turns a definitive refusal into an error that
names the settings to fix, so a wrong credential stops `execution-engine run` at once instead of
looking like an outage. A broker that does not answer is not judged here: the engine's own
start-up handles that as before.
"""

from __future__ import annotations

import asyncio
import ssl

from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    IllegalSaslStateError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from consumer.broker.settings import KafkaClientSettings


class KafkaSettingsRefused(Exception):
    """The broker answered, and refused these settings (credentials, mechanism, TLS trust)."""


async def check_kafka_settings(settings: KafkaClientSettings, timeout_s: float = 15.0) -> None:
    """Raise KafkaSettingsRefused when the first broker that answers refuses our settings."""
    options = settings.kafka_client_options()
    for server in settings.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit():
            continue  # aiokafka reports a malformed address itself
        try:
            connection = await asyncio.wait_for(
                create_conn(
                    host.strip("[]"),
                    int(port),
                    request_timeout_ms=int(timeout_s * 1000),
                    ssl_context=options.get("ssl_context"),
                    security_protocol=options["security_protocol"],
                    sasl_mechanism=options.get("sasl_mechanism"),
                    sasl_plain_username=options.get("sasl_plain_username"),
                    sasl_plain_password=options.get("sasl_plain_password"),
                ),
                timeout_s,
            )
        except (SaslAuthenticationFailed, AuthenticationFailedError, IllegalSaslStateError):
            raise KafkaSettingsRefused(
                f"Kafka at {server} refused to authenticate user "
                f"{settings.sasl_username!r} with SASL {options.get('sasl_mechanism')}: check "
                "KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM"
            ) from None
        except UnsupportedSaslMechanismError:
            raise KafkaSettingsRefused(
                f"Kafka at {server} does not offer SASL {options.get('sasl_mechanism')}: "
                "check KAFKA_SASL_MECHANISM"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise KafkaSettingsRefused(
                f"the TLS certificate of Kafka at {server} is not trusted "
                f"({exc.verify_message}): check KAFKA_SSL_CAFILE"
            ) from None
        except ssl.SSLError as exc:
            raise KafkaSettingsRefused(
                f"TLS with Kafka at {server} failed ({exc.reason}): check "
                "KAFKA_SECURITY_PROTOCOL (does that listener speak TLS?) and KAFKA_SSL_CAFILE"
            ) from None
        except (OSError, TimeoutError, KafkaError):
            continue  # down or unreachable: not a verdict on the settings; try the next one
        connection.close()
        return
