"""Reading an answer's body within a cap, content-encoding undone as it streams.

The cap counts decoded bytes: a 2 KB gzip answer that inflates to 1 GiB is cut at the cap like
any other, and inflating never produces more than what is still wanted (zlib's `max_length`),
so memory per request stays about one read chunk plus the cap. At most `max_codings` layers are
undone (`Content-Encoding: gzip, gzip` is one more than the default allows); the client only
offers gzip and deflate, and an encoding it does not know is refused rather than relayed as if
it were the body.
"""

from __future__ import annotations

import zlib
from typing import Protocol

from actions.http.errors import BadResponse

ACCEPT_ENCODING = "gzip, deflate"
CHUNK_BYTES = 64 * 1024
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class ChunkSource(Protocol):
    async def readany(self) -> bytes: ...


class _Layer:
    """One content coding being undone; "deflate" also accepts the raw form servers send."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._inflater = zlib.decompressobj(_WBITS[coding])
        self._started = False

    def feed(self, data: bytes, limit: int) -> bytes:
        """At most `limit` bytes out; input not yet inflated waits in the inflater. Input
        after the end of the compressed stream is dropped, not kept (zlib would keep it)."""
        if self._inflater.eof:
            return b""
        pending = self._inflater.unconsumed_tail + data
        try:
            out = self._inflater.decompress(pending, limit)
        except zlib.error:
            if self._started or self.coding != "deflate":
                raise BadResponse(f"the body is not valid {self.coding} data") from None
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            self._started = True
            return self.feed(data, limit)
        self._started = self._started or bool(pending)
        return out

    @property
    def ended(self) -> bool:
        """The compressed stream is complete: nothing after it is part of the body."""
        return self._inflater.eof and not self._inflater.unconsumed_tail

    @property
    def pending(self) -> int:
        """Input bytes held back because the last `feed` reached its limit."""
        return len(self._inflater.unconsumed_tail)


def layers_of(content_encoding: str | None, max_codings: int) -> list[_Layer]:
    """The decoders for a Content-Encoding header, outermost coding first."""
    if not content_encoding:
        return []
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if len(codings) > max_codings:
        raise BadResponse(
            f"the answer has {len(codings)} content-encoding layers; at most {max_codings} "
            "are decoded"
        )
    unknown = [c for c in codings if c not in _WBITS]
    if unknown:
        raise BadResponse(f"the answer's content-encoding {unknown[0][:32]!r} is not supported")
    # Codings are listed in the order they were applied: undo the last one first.
    return [_Layer(c) for c in reversed(codings)]


async def read_capped(
    source: ChunkSource, content_encoding: str | None, cap: int, max_codings: int = 1
) -> tuple[bytes, bool]:
    """(decoded body, truncated): at most `cap` bytes; truncated when there was more."""
    layers = layers_of(content_encoding, max_codings)
    chunks: list[bytes] = []
    size = 0
    if not layers:  # identity (nearly every answer): chunks as they come, up to the cap
        while True:
            raw = await source.readany()
            if not raw:
                return b"".join(chunks), False
            chunks.append(raw)
            size += len(raw)
            if size > cap:
                return b"".join(chunks)[:cap], True
    while size <= cap:
        pending = sum(layer.pending for layer in layers)
        # Input an inflater holds back is drained before more is read: memory stays bounded.
        raw = b"" if pending else await source.readany()
        if not raw and not pending:
            return b"".join(chunks), False
        decoded = _undo(layers, raw, cap + 1 - size)
        if decoded:
            chunks.append(decoded)
            size += len(decoded)
        if layers and layers[0].ended and not sum(layer.pending for layer in layers):
            # Bytes a server sends after the compressed stream's end are not read on.
            return b"".join(chunks)[:cap], size > cap
        if decoded:
            continue
        if not raw and sum(layer.pending for layer in layers) >= pending:
            raise BadResponse("the body's content-encoding does not decode to an end")
    return b"".join(chunks)[:cap], True


def _undo(layers: list[_Layer], raw: bytes, limit: int) -> bytes:
    """Push `raw` through every layer, wanting at most `limit` bytes from the last."""
    data = raw
    for layer in layers:
        data = layer.feed(data, limit)
    return data
