"""Finding a secret's occurrences in text: an Aho-Corasick automaton per secret over its
spellings (linear time whatever they are), and the check for a spelling cut at the end of a
text. `consumer.secrets.redaction` decides what is searched for where.
"""

from __future__ import annotations

from collections.abc import Iterable

from ahocorasick_rs import AhoCorasick, Implementation

from consumer.secrets.spellings import spellings

# A cut may leave at most HEAD - 1 characters of a credential's spelling at the end of a string.
HEAD = 4
# A string whose tail holds more candidate starts than this is masked from the first (a
# hostile body repeating a token's head must not cost more than this per string).
_MAX_TAIL_CANDIDATES = 64


class Automaton:
    """One Aho-Corasick automaton over a fixed set of patterns: all their occurrences in one
    pass, at a cost per character that does not depend on how many patterns there are."""

    __slots__ = ("_automaton", "_patterns", "shortest")

    def __init__(self, patterns: Iterable[str]) -> None:
        self._patterns = sorted(set(patterns), key=len, reverse=True)
        self.shortest = len(self._patterns[-1]) if self._patterns else 0
        self._automaton = (
            AhoCorasick(self._patterns, implementation=Implementation.NoncontiguousNFA)
            if self._patterns
            else None
        )

    def __bool__(self) -> bool:
        return self._automaton is not None

    def spans(self, text: str) -> list[tuple[int, int]]:
        """(start, end) of every occurrence of every pattern, overlapping ones included."""
        if self._automaton is None or len(text) < self.shortest:
            return []
        try:
            found = self._automaton.find_matches_as_indexes(text, overlapping=True)
        except UnicodeEncodeError:  # a lone surrogate: the automaton takes UTF-8 text only
            return self._spans_slowly(text)
        return [(start, end) for _, start, end in found]

    def _spans_slowly(self, text: str) -> list[tuple[int, int]]:
        spans = []
        for pattern in self._patterns:
            start = text.find(pattern)
            while start >= 0:
                spans.append((start, start + len(pattern)))
                start = text.find(pattern, start + 1)
        return spans


class Secret:
    """One held secret: its spellings' automaton, and what the tail check needs."""

    __slots__ = ("_by_head", "_longest", "automaton", "heads", "refs", "value")

    def __init__(self, value: str) -> None:
        self.value = value
        spelled = spellings(value)
        self.automaton = Automaton(spelled)
        self._longest = max(len(s) for s in spelled)
        self._by_head: dict[str, list[str]] = {}
        for spelling in spelled:
            if len(spelling) > HEAD:
                self._by_head.setdefault(spelling[:HEAD], []).append(spelling)
        # The heads, and the spellings too short to have one: every occurrence starts with
        # one of these (what `RedactionScope._may_hit` relies on).
        self.heads = Automaton([*self._by_head, *(s for s in spelled if len(s) <= HEAD)])
        self.refs = 0

    def cut_tail(self, text: str) -> int | None:
        """Where a trailing partial spelling (at least HEAD characters, not the whole) starts:
        the end of `text` is the start of this secret, as a cut leaves it. None if not."""
        if not self.heads or len(text) < HEAD:
            return None
        offset = max(0, len(text) - self._longest + 1)
        window = text[offset:]
        starts = sorted({start for start, _ in self.heads.spans(window)})
        if len(starts) > _MAX_TAIL_CANDIDATES:
            return offset + starts[0]
        for start in starts:  # leftmost first: the longest partial spelling
            tail = window[start:]
            if any(s.startswith(tail) for s in self._by_head.get(tail[:HEAD], ())):
                return offset + start
        return None


def masked(text: str, spans: list[tuple[int, int]], mask: str) -> str:
    """`text` with the union of `spans` replaced, one mask per run of overlapping spans."""
    spans.sort()
    parts: list[str] = []
    kept = 0  # end of the text already copied or masked
    run_start, run_end = spans[0]
    for start, end in spans[1:]:
        if start <= run_end:
            run_end = max(run_end, end)
            continue
        parts += (text[kept:run_start], mask)
        kept = run_end
        run_start, run_end = start, end
    parts += (text[kept:run_start], mask, text[run_end:])
    return "".join(parts)
