"""On-demand benchmarks of the engine (not part of the test suite): `python -m bench --help`.

Every scenario runs the engine as the real CLI (`execution-engine run`) in its own process,
against a real broker (`KAFKA_BOOTSTRAP_SERVERS`, or one started by `consumer.localkafka`),
and measures what a `read_committed` consumer of the results topic sees.
"""
