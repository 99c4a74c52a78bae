"""Rendered results, held as identity-free templates shared between targets, and the scrape.

A target's lines differ from another target's mostly by its identity labels (``source_kind``,
``source``, ``location`` and its own labels): 10,000 targets behind the same load balancer
present the same certificates, protocols, suites and policy verdict. So each result's lines
are held as its escaped identity and, per family, a *template*: the family's text split on
that identity, a tuple of byte pieces such that ``identity.join(pieces)`` is the text. Equal
templates are one object, shared through the bounded table of equal immutable values
(:func:`certscope.certs.shared`, which also shares DER and policy verdicts); a result's own
bytes are its identity and the families whose values are its own (times and durations).
A scrape does one C-level ``bytes.join`` per result and family.

Splitting and joining on the same separator gives back the same text whatever the text
holds (``sep.join(text.split(sep)) == text``), so the exposition is byte for byte what the
fragments say even when an identity also appears inside another label's value.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from itertools import chain

from ..certs import shared as _shared
from ..config import Policy
from ..results import AssessedLocation, ProbeResult, SourceResult, SSHProbeResult
from .families import FAMILIES
from .lines import Fragments, _inner
from .sources import source_fragments
from .targets import assessment_fragments, policy_fragments, probe_fragments, ssh_fragments

Result = ProbeResult | SSHProbeResult | SourceResult | AssessedLocation | Policy

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

#: id(result) -> (result, identity, family indexes, shared templates, own templates). The
#: result is held so that its id cannot be reused while the entry lives; the indexes name the
#: shared templates' families, then the own ones'.
Entry = tuple[object, bytes, bytes, tuple[Template, ...], tuple[Template, ...]]


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
    own: list[Template] = []
    shared_at = bytearray()
    own_at = bytearray()
    for name, lines in _fragments_of(result).items():
        index = _INDEX[name]
        text = "".join(lines).encode()
        if not identity:  # nothing to split on, nothing to share
            own.append((text,))
            own_at.append(index)
            continue
        pieces = text.split(identity)
        if pieces[0] == _OPENINGS[index]:
            pieces[0] = _OPENINGS[index]
        if index in _OWN:
            own.append(tuple(pieces))
            own_at.append(index)
        else:
            shared.append(_shared(tuple(pieces)))
            shared_at.append(index)
    return (
        result,
        identity,
        _shared(bytes(shared_at + own_at)),
        _shared(tuple(shared)),
        tuple(own),
    )


def _size(entry: Entry) -> int:
    """The length of the text an entry renders to."""
    _, identity, _, shared, own = entry
    return sum(sum(map(len, t)) + len(identity) * (len(t) - 1) for t in chain(shared, own))


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
            _, identity, indexes, shared, own = entry
            for obj in chain((entry, identity, indexes, shared, own), shared, own):
                if id(obj) not in seen:
                    seen.add(id(obj))
                    total += sys.getsizeof(obj)
            for piece in chain.from_iterable(chain(shared, own)):
                if id(piece) not in seen:
                    seen.add(id(piece))
                    total += sys.getsizeof(piece)
        return total

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
            _, identity, indexes, shared, own = self._encoded(r)
            join = identity.join
            # Each joined piece is appended and freed at once: a scrape holds little beyond
            # the body it returns.
            for index, template in zip(indexes, chain(shared, own), strict=True):
                by_family[index] += join(template)
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


def render_once(results: Iterable[Result]) -> str:
    """Render without a cache (``/probe`` and one-off uses)."""
    return Exposition().render(results)
