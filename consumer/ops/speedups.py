"""Start-up check that the compiled fast paths are in use.

aiokafka falls back, silently, to pure-Python record encoding and decoding when its C
extensions are missing (no wheel for the platform, a source build without a compiler, or
AIOKAFKA_NO_EXTENSIONS set): everything still works, several times slower per record. The same
holds for the json module's C accelerator. Say so once, loudly, at start-up. (httptools, the
HTTP parser, has no pure-Python fallback: without its compiled module it does not import.)
"""

from __future__ import annotations

import gc
import json.decoder
import json.encoder

from aiokafka.record import default_records, legacy_records, memory_records
from structlog.typing import FilteringBoundLogger

_COMPILED_RECORDS = "aiokafka.record._crecords"


def speedups() -> dict[str, bool]:
    """Which compiled fast paths this process uses."""
    record_classes = (
        default_records.DefaultRecordBatch,
        default_records.DefaultRecordBatchBuilder,
        legacy_records.LegacyRecordBatch,
        memory_records.MemoryRecords,
    )
    return {
        "aiokafka_c_extensions": all(
            cls.__module__.startswith(_COMPILED_RECORDS) for cls in record_classes
        ),
        # Not in typeshed: the C hooks are private names of the json package.
        "json_c_accelerator": getattr(json.encoder, "c_make_encoder", None) is not None
        and getattr(json.decoder, "c_scanstring", None) is not None,
    }


def warn_if_slow(log: FilteringBoundLogger) -> dict[str, bool]:
    found = speedups()
    missing = sorted(name for name, present in found.items() if not present)
    if missing:
        log.warning(
            "engine.slow_path",
            missing=missing,
            hint="install aiokafka from a binary wheel and unset AIOKAFKA_NO_EXTENSIONS",
        )
    return found


def freeze_startup_objects() -> None:
    """Move everything alive after start-up (modules, pydantic schemas, settings: hundreds of
    thousands of objects that live as long as the process) out of the garbage collector's
    view, so its full collections stop walking them again and again: -7 to -10 % CPU per
    record (bench, pass-through). Cycles created later are collected as before."""
    gc.collect()
    gc.freeze()
