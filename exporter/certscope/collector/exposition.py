"""Rendered results, held as identity-free templates shared between targets, and the scrape.

A target's lines differ from another target's mostly by its identity labels (``source_kind``,
``source``, ``location`` and its own labels): 10,000 targets behind the same load balancer
present the same certificates, protocols, suites and policy verdict. So each result's lines
are held as its escaped identity and, per family, a *template*: the family's text split on
that identity, a tuple of byte pieces such that ``identity.join(pieces)`` is the text. Equal
templates are one object, shared through a bounded table of their own
(:class:`certscope.certs.Interner`, apart from the one for DER and policy verdicts); a
result's own bytes are its identity and the families whose values are its own (times and
durations).
A scrape does one C-level ``bytes.join`` per result and family.

Splitting and joining on the same separator gives back the same text whatever the text
holds (``sep.join(text.split(sep)) == text``), so the exposition is byte for byte what the
fragments say even when an identity also appears inside another label's value.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain

from ..certs import Interner
from ..config import Policy
from ..results import AssessedLocation, ProbeResult, SourceResult, SSHProbeResult
from .families import FAMILIES
from .lines import Fragments, _inner
from .sources import source_fragments
from .targets import assessment_fragments, policy_fragments, probe_fragments, ssh_fragments

Result = ProbeResult | SSHProbeResult | SourceResult | AssessedLocation | Policy

#: Equal templates as one object. A table of their own, apart from :data:`certs.shared`:
#: where each target has its own certificate there are as many distinct templates as
#: targets, and in one table they would clear the shared DER and verdicts out again and
#: again (a fleet's intermediate would then be held once per target).
_shared = Interner(65536)

#: One family's lines of one result, less its identity: ``identity.join(template)``.
Template = tuple[bytes, ...]

#: Each family's place in the exposition, and its HELP/TYPE header in that place.
_INDEX = {f.name: i for i, f in enumerate(FAMILIES)}
_HEADERS = tuple(f"# HELP {f.name} {f.help}\n# TYPE {f.name} {f.type}\n".encode() for f in FAMILIES)
#: What a template's first piece is when the family's first line starts with the identity.
_OPENINGS = tuple(f"{f.name}{{".encode() for f in FAMILIES)
# A result's families are listed as one byte each.
assert len(FAMILIES) < 256

#: Families whose values are each result's own (when it ran, how long it took): their
#: templates are never equal to another result's, so they are kept out of the shared table
#: (where they would only push out what is shared).
_OWN = frozenset(
    _INDEX[name]
    for name in (
        "certscope_probe_duration_seconds",
        "certscope_probe_phase_duration_seconds",
        "certscope_probe_timestamp_seconds",
        "certscope_probe_last_success_timestamp_seconds",
        "certscope_tls_scan_timestamp_seconds",
        "certscope_tls_scan_duration_seconds",
        "certscope_tls_scan_last_success_timestamp_seconds",
    )
)

#: id(result) -> (result, identity, shared families, shared templates, own families, own
#: pieces). The result is held so that its id cannot be reused while the entry lives. Shared
#: families name each shared template's family (one byte each); a result's own templates are
#: one flat tuple of pieces, and own families are (family, number of pieces) byte pairs: one
#: tuple per result instead of one per family.
Entry = tuple[object, bytes, bytes, tuple[Template, ...], bytes, tuple[bytes, ...]]


def _identity(result: Result) -> str:
    """The escaped identity labels that begin each of the result's lines ("" for results
    whose lines do not share one: sources and policy exceptions)."""
    if isinstance(result, ProbeResult | SSHProbeResult):
        kind = "tls" if isinstance(result, ProbeResult) else "ssh"
        pairs = (("source_kind", kind), ("source", result.name), ("location", result.address))
        return _inner((*pairs, *result.labels))
    if isinstance(result, AssessedLocation):
        return _inner(
            (
                ("source_kind", result.source_kind),
                ("source", result.source),
                ("location", result.location),
                *result.labels,
            )
        )
    return ""


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


def _encode(result: Result) -> Entry:
    """One result's lines as its identity and one template per family (see the module)."""
    identity = _identity(result).encode()
    shared: list[Template] = []
    own: list[bytes] = []
    shared_at = bytearray()
    own_at = bytearray()
    for name, lines in _fragments_of(result).items():
        index = _INDEX[name]
        text = "".join(lines).encode()
        pieces = text.split(identity) if identity else [text]  # nothing to share without one
        if pieces[0] == _OPENINGS[index]:
            pieces[0] = _OPENINGS[index]
        if (index in _OWN or not identity) and len(pieces) < 256:
            own += pieces
            own_at.extend((index, len(pieces)))
        else:
            shared.append(_shared(tuple(pieces)))
            shared_at.append(index)
    return (
        result,
        identity,
        _shared(bytes(shared_at)),
        _shared(tuple(shared)),
        _shared(bytes(own_at)),
        tuple(own),
    )


def _templates(entry: Entry) -> Iterator[tuple[int, Template]]:
    """Each family of an entry with its template (the scrape does the same, inline)."""
    _, _, shared_at, shared, own_at, own = entry
    yield from zip(shared_at, shared, strict=True)
    start = 0
    for index, count in zip(own_at[::2], own_at[1::2], strict=True):
        yield index, own[start : start + count]
        start += count


def _size(entry: Entry) -> int:
    """The length of the text an entry renders to."""
    width = len(entry[1])
    return sum(sum(map(len, t)) + width * (len(t) - 1) for _, t in _templates(entry))


class Exposition:
    """Renders snapshots, holding each result's templates while that result is current.

    Each result is split into templates once (:func:`_encode`), when it is stored; a scrape
    joins each result's identity into its templates, family by family.
    """

    def __init__(self) -> None:
        self._cache: dict[int, Entry] = {}

    def prepare(self, stored: Sequence[Result], dropped: Sequence[Result]) -> None:
        """Render ``stored`` results now and forget ``dropped`` ones (replaced or removed), so
        that the scrape that first shows a result only joins its templates."""
        for old in dropped:
            hit = self._cache.get(id(old))
            if hit is not None and hit[0] is old:
                del self._cache[id(old)]
        for new in stored:
            self._encoded(new)

    def held_bytes(self) -> int:
        """The size of the text the current results render to (what the templates stand
        for; shared templates make the memory held far smaller at fleet scale)."""
        return sum(map(_size, self._cache.values()))

    def memory_bytes(self) -> int:
        """The memory the current results' entries take, each shared object counted once
        (what :meth:`held_bytes` costs; a diagnostic, it walks every entry)."""
        seen: set[int] = set()
        total = sys.getsizeof(self._cache)
        for entry in self._cache.values():
            shared = entry[3]
            for obj in chain(entry[1:], shared, chain.from_iterable(shared), entry[5]):
                if id(obj) not in seen:
                    seen.add(id(obj))
                    total += sys.getsizeof(obj)
        return total + sum(map(sys.getsizeof, self._cache.values()))

    def _encoded(self, result: Result) -> Entry:
        hit = self._cache.get(id(result))
        if hit is not None and hit[0] is result:
            return hit
        hit = _encode(result)
        self._cache[id(result)] = hit
        return hit

    def render_parts(self, results: Iterable[Result]) -> list[bytes | bytearray]:
        """The exposition as a few large parts (a header, then one family's lines), in
        family order: a response can write them without joining them first.

        Nothing of a scrape is kept after it: at fleet scale a copy of the last body would
        be as large again as everything the templates hold.
        """
        current = list(results)
        by_family = [bytearray() for _ in _HEADERS]
        for r in current:
            _, identity, shared_at, shared, own_at, own = self._encoded(r)
            join = identity.join
            # Each joined piece is appended and freed at once: a scrape holds little beyond
            # the body it returns.
            for index, template in zip(shared_at, shared, strict=True):
                by_family[index] += join(template)
            start = 0
            pairs = iter(own_at)
            for index, count in zip(pairs, pairs, strict=True):
                end = start + count
                by_family[index] += join(own[start:end])
                start = end
        if len(self._cache) > len(current):
            live = {id(r) for r in current}
            self._cache = {k: v for k, v in self._cache.items() if k in live}
        parts: list[bytes | bytearray] = []
        for header, present in zip(_HEADERS, by_family, strict=True):
            if present:
                parts.append(header)
                parts.append(present)
        return parts

    def render_bytes(self, results: Iterable[Result]) -> bytes:
        return b"".join(self.render_parts(results))

    def render(self, results: Iterable[Result]) -> str:
        return self.render_bytes(results).decode("utf-8")


def render_direct(results: Iterable[Result]) -> bytes:
    """The exposition of ``results`` straight from their lines, with nothing held or shared:
    for ``/probe`` and one-off uses, whose templates would only push what targets share out
    of the shared table. The same text as :meth:`Exposition.render_bytes`."""
    by_family: dict[int, list[str]] = {}
    for result in results:
        for name, lines in _fragments_of(result).items():
            by_family.setdefault(_INDEX[name], []).extend(lines)
    return b"".join(_HEADERS[i] + "".join(by_family[i]).encode() for i in sorted(by_family))


def render_once(results: Iterable[Result]) -> str:
    """:func:`render_direct` as text."""
    return render_direct(results).decode("utf-8")
