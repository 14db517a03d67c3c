"""The local broker really works with aiokafka, transactions included.

These tests start their own broker (``kafka_broker()``) and fail, never skip, when it
cannot start: a silently skipped broker test would hide a broken CI environment.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import ProducerFenced

from consumer.localkafka import LocalKafka

TIMEOUT_S = 30.0


@pytest.fixture
def bootstrap(kafka_bootstrap: str) -> str:
    # The session's broker (conftest: kafka_broker()); restart tests start their own.
    return kafka_bootstrap


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _create_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name=topic, num_partitions=partitions, replication_factor=1)]
        )
        for _ in range(50):
            described = await admin.describe_topics([topic])
            if described and len(described[0]["partitions"]) == partitions:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"topic {topic} never showed {partitions} partitions")
    finally:
        await admin.close()


async def _consume(consumer: AIOKafkaConsumer, count: int) -> list[ConsumerRecord[bytes, bytes]]:
    records: list[ConsumerRecord[bytes, bytes]] = []
    async with asyncio.timeout(TIMEOUT_S):
        while len(records) < count:
            batch = await consumer.getmany(timeout_ms=500)
            for tp_records in batch.values():
                records.extend(tp_records)
    return records


async def _drain(consumer: AIOKafkaConsumer, quiet_s: float = 3.0) -> list[bytes | None]:
    """Everything the consumer can see until it has been idle for ``quiet_s``."""
    values: list[bytes | None] = []
    idle = 0.0
    async with asyncio.timeout(TIMEOUT_S):
        while idle < quiet_s:
            batch = await consumer.getmany(timeout_ms=500)
            got = [record.value for tp_records in batch.values() for record in tp_records]
            values.extend(got)
            idle = 0.0 if got else idle + 0.5
    return values


async def _committed_eventually(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    """The group's committed offset once the transaction markers have landed.

    commit_transaction() returns when the coordinator has *decided* to commit; the
    markers that make the offsets visible follow asynchronously, and aiokafka's
    OffsetFetch (v3, no KIP-447 require_stable) meanwhile returns the previous offset.
    """
    committed: int | None = None
    async with asyncio.timeout(TIMEOUT_S):
        while committed is None:
            committed = await consumer.committed(tp)
            if committed is None:
                await asyncio.sleep(0.1)
    return committed


def _read_committed(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=_name("verifier"),
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )


async def test_plain_produce_consume(bootstrap: str) -> None:
    topic = _name("plain")
    await _create_topic(bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        assert await producer.partitions_for(topic) == {0, 1, 2}
        for i in range(30):
            await producer.send(topic, f"m{i}".encode(), key=f"k{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=_name("plain-group"),
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        records = await _consume(consumer, 30)
    finally:
        await consumer.stop()
    assert sorted(r.value or b"" for r in records) == sorted(f"m{i}".encode() for i in range(30))
    assert {r.partition for r in records} == {0, 1, 2}


async def test_consume_transform_produce_transaction(bootstrap: str) -> None:
    source, sink, group = _name("in"), _name("out"), _name("engine")
    await _create_topic(bootstrap, source)
    await _create_topic(bootstrap, sink)
    seed = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await seed.start()
    try:
        for i in range(6):
            await seed.send_and_wait(source, f"req{i}".encode(), partition=0)
    finally:
        await seed.stop()

    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    tp = TopicPartition(source, 0)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=_name("txn"),
        enable_idempotence=True,
    )
    await consumer.start()
    await producer.start()
    try:
        inputs = await _consume(consumer, 6)
        assert tp in consumer.assignment()
        last_offset = max(r.offset for r in inputs)
        async with producer.transaction():
            for record in inputs:
                await producer.send(sink, b"done:" + (record.value or b""))
            await producer.send_offsets_to_transaction({tp: last_offset + 1}, group)
        assert await _committed_eventually(consumer, tp) == last_offset + 1
    finally:
        await producer.stop()
        await consumer.stop()

    verifier = _read_committed(bootstrap, sink)
    await verifier.start()
    try:
        outputs = await _consume(verifier, 6)
    finally:
        await verifier.stop()
    assert sorted(r.value or b"" for r in outputs) == sorted(b"done:req%d" % i for i in range(6))

    # A fresh consumer in the same group resumes after the transactionally committed offset.
    resumed = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    resumed.assign([tp])
    await resumed.start()
    try:
        assert await resumed.committed(tp) == last_offset + 1
        assert await resumed.position(tp) == last_offset + 1
    finally:
        await resumed.stop()


async def test_aborted_transaction_is_invisible(bootstrap: str) -> None:
    topic = _name("abort")
    await _create_topic(bootstrap, topic)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=_name("txn"), enable_idempotence=True
    )
    await producer.start()
    try:
        await producer.begin_transaction()
        for i in range(5):
            await producer.send(topic, f"aborted{i}".encode())
        await producer.flush()
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topic, b"committed")
    finally:
        await producer.stop()

    committed = _read_committed(bootstrap, topic)
    await committed.start()
    try:
        assert await _drain(committed) == [b"committed"]
    finally:
        await committed.stop()

    # read_uncommitted does see the aborted records: proves they really reached the log.
    uncommitted = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await uncommitted.start()
    try:
        seen = await _drain(uncommitted)
    finally:
        await uncommitted.stop()
    assert sorted(v or b"" for v in seen) == sorted(
        [b"committed", *(f"aborted{i}".encode() for i in range(5))]
    )


async def test_second_producer_fences_first(bootstrap: str) -> None:
    topic = _name("fence")
    await _create_topic(bootstrap, topic)
    txn_id = _name("txn")
    first = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=txn_id, enable_idempotence=True
    )
    second = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=txn_id, enable_idempotence=True
    )
    await first.start()
    try:
        async with first.transaction():
            await first.send(topic, b"first-ok")
        await first.begin_transaction()
        await first.send_and_wait(topic, b"first-zombie")

        await second.start()  # InitProducerId bumps the epoch and aborts first's open txn
        async with second.transaction():
            await second.send(topic, b"second-ok")

        # The zombie's next transactional operation (here its commit) raises
        # ProducerFenced.  The producer is then in FATAL_ERROR: further commit/abort calls
        # fail an internal assertion, so it must be stopped and replaced, never reused.
        with pytest.raises(ProducerFenced):
            async with asyncio.timeout(TIMEOUT_S):
                await first.commit_transaction()
    finally:
        await second.stop()
        await first.stop()

    verifier = _read_committed(bootstrap, topic)
    await verifier.start()
    try:
        assert sorted(v or b"" for v in await _drain(verifier)) == [b"first-ok", b"second-ok"]
    finally:
        await verifier.stop()


async def _produce_one(servers: str, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()


async def _read_all(servers: str, topic: str, count: int) -> list[bytes | None]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=servers, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        return [r.value for r in await _consume(consumer, count)]
    finally:
        await consumer.stop()


async def test_restart_keeps_data(tmp_path: Path) -> None:
    # Always the Maven-backed broker: restart()/kill() are what fault tests rely on.
    broker = LocalKafka(data_dir=tmp_path / "kafka")
    await asyncio.to_thread(broker.start)
    try:
        topic = _name("durable")
        await _produce_one(broker.bootstrap_servers, topic, b"before-restart")
        servers_before = broker.bootstrap_servers

        await asyncio.to_thread(broker.restart)
        assert broker.bootstrap_servers == servers_before
        assert await _read_all(broker.bootstrap_servers, topic, 1) == [b"before-restart"]

        await _produce_one(broker.bootstrap_servers, topic, b"before-kill")
        await asyncio.to_thread(broker.restart, hard=True)  # SIGKILL, like a crash
        assert await _read_all(broker.bootstrap_servers, topic, 2) == [
            b"before-restart",
            b"before-kill",
        ]
    finally:
        await asyncio.to_thread(broker.stop)
    assert not broker.running
    assert (tmp_path / "kafka").exists(), "a caller-provided data dir must be kept"


def test_start_failure_reports_broker_log() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        broker = LocalKafka(port=squatter.getsockname()[1])
        with pytest.raises(RuntimeError) as excinfo:
            broker.start(timeout_s=60)
    broker.stop()
    message = str(excinfo.value)
    assert "last lines of" in message
    assert "exited with code" in message
    assert not broker.data_dir.exists()


async def test_module_command_runs_a_broker_in_the_foreground_until_sigterm(
    tmp_path: Path,
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "consumer.localkafka",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path / "kafka"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(180):
            line = (await process.stdout.readline()).decode()
        assert " ready: bootstrap servers 127.0.0.1:" in line, line
        bootstrap = line.rsplit(" ", 1)[1].strip()
        topic = _name("foreground")
        await _produce_one(bootstrap, topic, b"hello")
        assert await _read_all(bootstrap, topic, 1) == [b"hello"]
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert (tmp_path / "kafka" / "server.properties").exists(), "--data-dir is kept"
