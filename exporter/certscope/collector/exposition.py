"""The exposition of results: each result's lines cached while it is current, and the scrape."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence

from ..config import Policy
from ..results import AssessedLocation, ProbeResult, SourceResult, SSHProbeResult
from .families import FAMILIES
from .lines import Fragments
from .sources import source_fragments
from .targets import assessment_fragments, policy_fragments, probe_fragments, ssh_fragments

Result = ProbeResult | SSHProbeResult | SourceResult | AssessedLocation | Policy


#: Each family's place in the exposition, and its HELP/TYPE header in that place.
_INDEX = {f.name: i for i, f in enumerate(FAMILIES)}
_HEADERS = tuple(f"# HELP {f.name} {f.help}\n# TYPE {f.name} {f.type}\n".encode() for f in FAMILIES)


def _encode(fragments: Fragments) -> tuple[bytes, array[int]]:
    """One result's lines as one buffer, and where each family's lines end in it.

    One bytes object and one array per result instead of a dictionary of per-family bytes
    objects: at fleet scale that per-object overhead was about a sixth of the memory the
    exposition holds. ``spans`` is (family index, end offset) pairs, in buffer order.
    """
    texts = ["".join(lines) for lines in fragments.values()]
    whole = "".join(texts)
    buf = whole.encode()
    # Nearly always ASCII, where byte offsets are character offsets; else measure each family.
    sizes = map(len, texts) if len(buf) == len(whole) else (len(t.encode()) for t in texts)
    spans: list[int] = []
    end = 0
    for name, size in zip(fragments, sizes, strict=True):
        end += size
        spans += (_INDEX[name], end)
    return buf, array("H" if end <= 0xFFFF else "I", spans)


def _fragments_of(result: Result) -> Fragments:
    if isinstance(result, ProbeResult):
        return probe_fragments(result)
    if isinstance(result, SSHProbeResult):
        return ssh_fragments(result)
    if isinstance(result, SourceResult):
        return source_fragments(result)
    if isinstance(result, AssessedLocation):
        return assessment_fragments(result)
    return policy_fragments(result)


class Exposition:
    """Renders snapshots, caching each result's encoded lines while that result is current.

    Each result's lines are rendered and encoded once, into one buffer (:func:`_encode`); a
    scrape gathers views of those buffers per family and joins each family once. A scrape of
    an unchanged snapshot (the same ``key`` object) returns the previous parts.
    """

    def __init__(self) -> None:
        # id(result) -> (result, buffer, spans); the result is held so its id cannot be reused.
        self._cache: dict[int, tuple[object, bytes, array[int]]] = {}
        self._last: tuple[object, list[bytes | bytearray]] | None = None

    def prepare(self, stored: Sequence[Result], dropped: Sequence[Result]) -> None:
        """Render ``stored`` results now and forget ``dropped`` ones (replaced or removed), so
        that the scrape that first shows a result only gathers its lines."""
        for old in dropped:
            hit = self._cache.get(id(old))
            if hit is not None and hit[0] is old:
                del self._cache[id(old)]
        for new in stored:
            self._encoded(new)

    def held_bytes(self) -> int:
        """The size of the rendered text held for the current results."""
        return sum(len(buf) for _, buf, _ in self._cache.values())

    def _encoded(self, result: Result) -> tuple[object, bytes, array[int]]:
        hit = self._cache.get(id(result))
        if hit is not None and hit[0] is result:
            return hit
        hit = (result, *_encode(_fragments_of(result)))
        self._cache[id(result)] = hit
        return hit

    def render_parts(
        self, results: Iterable[Result], key: object = None
    ) -> list[bytes | bytearray]:
        """The exposition as a few large parts (a header, then one family's lines), in
        family order: a response can write them without joining them first."""
        if key is not None and self._last is not None and self._last[0] is key:
            return self._last[1]
        current = list(results)
        # Each family's lines are copied straight into its own buffer (each slice is freed at
        # once), so a scrape holds little beyond the body it returns.
        by_family: list[bytearray | None] = [None] * len(_HEADERS)
        for r in current:
            _, buf, spans = self._encoded(r)
            start = 0
            pairs = iter(spans)
            for index, end in zip(pairs, pairs, strict=True):
                lines = by_family[index]
                if lines is None:
                    by_family[index] = bytearray(buf[start:end])
                else:
                    lines += buf[start:end]
                start = end
        if len(self._cache) > len(current):
            live = {id(r) for r in current}
            self._cache = {k: v for k, v in self._cache.items() if k in live}
        parts: list[bytes | bytearray] = []
        for header, present in zip(_HEADERS, by_family, strict=True):
            if present:
                parts.append(header)
                parts.append(present)
        if key is not None:
            self._last = (key, parts)
        return parts

    def render_bytes(self, results: Iterable[Result], key: object = None) -> bytes:
        return b"".join(self.render_parts(results, key))

    def render(self, results: Iterable[Result]) -> str:
        return self.render_bytes(results).decode("utf-8")


def render_once(results: Iterable[Result]) -> str:
    """Render without a cache (``/probe`` and one-off uses)."""
    return Exposition().render(results)
