"""Rendered results, held as identity-free templates shared between targets, and the scrape.

A target's lines differ from another target's mostly by its identity labels (``source_kind``,
``source``, ``location`` and its own labels): 10,000 targets behind the same load balancer
present the same certificates, protocols, suites and policy verdict. So each result's lines
are held as its escaped identity and, per family, a *template*: the family's text split on
that identity, a tuple of byte pieces such that ``identity.join(pieces)`` is the text. Equal
templates are one object, shared through a bounded table of their own
(:class:`certscope.certs.Interner`, apart from the one for DER and policy verdicts).
The families whose values are each result's own (times and durations) are one format for
all of them, shared like the templates, and the result keeps only their values, formatted
once, in one bytes object. A target's probe result and its assessment share one identity
object. Each result holds its rendering itself (``rendered``, ``rendered_identity``,
``rendered_values``), so it lives and goes with the result and the exposition keeps no
table of results.
A scrape does one C-level ``bytes.join`` per result and shared family, and one ``%`` per
result for its own families.

Splitting and joining on the same separator gives back the same text whatever the text
holds (``sep.join(text.split(sep)) == text``), so the exposition is byte for byte what the
fragments say even when an identity also appears inside another label's value; own families
are packed only when no marker byte is in their text, else kept as templates.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from typing import cast

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

#: Families whose values are each result's own (when it ran, how long it took): a result holds
#: only their values, formatted once; the rest of their text is a format shared between
#: results (see :func:`_pack`).
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

#: In an own format: where the identity goes, and where one family's text ends. Neither can
#: be in exposition text but inside a label value; a result whose text holds one outside its
#: identity keeps those families as templates (see :func:`_pack`).
_MARK = b"\x01"
_END = b"\x00"

#: Equal identities as one object: a target's probe result and its assessment have the same
#: identity labels. Bounded like the tables above; past it, a probe and the assessment stored
#: right after it still share theirs.
_identities = Interner(1 << 17)

#: The parts of an entry that many results share: shared families (one byte each), their
#: templates, own families (one byte each) and the own families' format (``%s`` for each
#: value, :data:`_MARK` for the identity, :data:`_END` between families).
Layout = tuple[bytes, tuple[Template, ...], bytes, bytes]

#: A result's rendering: (identity, layout, own values). Own values: each own line's value,
#: formatted, one space between (a value never holds one).
Entry = tuple[bytes, Layout, bytes]


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


#: A line's value: what follows its last space (a value never holds a space or a newline).
_VALUE = re.compile(rb" ([^ \n]*)\n")


def _pack(texts: list[bytes], identity: bytes) -> tuple[bytes, bytes] | None:
    """Own families' texts as one format and the values in them: each line's value becomes
    ``%s``, the identity :data:`_MARK`, and :data:`_END` separates the families. None when
    a text holds a marker byte (only a label value can), so that the format could not give
    the text back."""
    text = _END.join(texts)
    if _MARK in text or text.count(_END) != len(texts) - 1:
        return None
    marked = text.replace(identity, _MARK)
    values = _VALUE.findall(marked)
    return _VALUE.sub(b" %s\n", marked.replace(b"%", b"%%")), b" ".join(values)


def _encode(result: Result) -> Entry:
    """One result's lines as its identity, the shared layout and its own values (see the
    module)."""
    identity = _identities(_identity(result).encode())
    shared: list[Template] = []
    shared_at = bytearray()
    own_at = bytearray()
    own: list[bytes] = []
    for name, lines in _fragments_of(result).items():
        index = _INDEX[name]
        text = "".join(lines).encode()
        if identity and index in _OWN:
            own_at.append(index)
            own.append(text)
            continue
        shared.append(_template(index, text, identity))
        shared_at.append(index)
    packed = _pack(own, identity) if own else (b"", b"")
    if packed is None:  # kept as templates instead, each the family's own
        for index, text in zip(own_at, own, strict=True):
            shared.append(_template(index, text, identity))
            shared_at.append(index)
        own_at.clear()
        packed = (b"", b"")
    layout = (_shared(bytes(shared_at)), tuple(shared), _shared(bytes(own_at)), packed[0])
    return identity, _shared(layout) if identity else layout, packed[1]


def _template(index: int, text: bytes, identity: bytes) -> Template:
    pieces = text.split(identity) if identity else [text]  # nothing to share without one
    if pieces[0] == _OPENINGS[index]:
        pieces[0] = _OPENINGS[index]
    # Results without an identity (sources) have text of their own: kept out of the table,
    # where it would only push out what is shared.
    return _shared(tuple(pieces)) if identity else tuple(pieces)


def _families(entry: Entry) -> Iterator[tuple[int, bytes]]:
    """Each family of an entry with its text (the scrape does the same, inline)."""
    identity, (shared_at, shared, own_at, own_format), own = entry
    for index, template in zip(shared_at, shared, strict=True):
        yield index, identity.join(template)
    if own_at:
        texts = (own_format % tuple(own.split(b" "))).split(_END)
        for index, text in zip(own_at, texts, strict=True):
            yield index, text.replace(_MARK, identity)


class Exposition:
    """Renders snapshots from each result's entry: its identity, the shared layout and its own
    values.

    Each result is encoded once (:func:`_encode`), when it is stored, and holds its entry
    itself (three slots), so the entry lives exactly as long as the result: nothing here
    has to be told that a result was replaced or removed, and no table of entries by result
    is kept (at fleet scale its slots and keys were 140 bytes per target). A scrape joins
    each result's identity into its templates, family by family.
    """

    def __init__(self) -> None:
        # The policy (its exceptions' lines) is the one result kept by the configuration,
        # which does not hold a rendering: its entry is kept here, for the current one.
        self._policy: tuple[Policy, Entry] | None = None

    def prepare(self, stored: Sequence[Result], dropped: Sequence[Result]) -> None:
        """Render ``stored`` results now, so that the scrape that first shows a result only
        joins its templates (``dropped`` ones take their entries with them)."""
        for new in stored:
            self._encoded(new)

    def held_bytes(self, results: Iterable[Result]) -> int:
        """The size of the text ``results`` render to (what their entries stand for; shared
        templates make the memory held far smaller at fleet scale)."""
        return sum(len(text) for r in results for _, text in _families(self._encoded(r)))

    def memory_bytes(self, results: Iterable[Result]) -> int:
        """The memory the entries of ``results`` take, each shared object counted once (what
        :meth:`held_bytes` costs; a diagnostic, it walks every entry)."""
        seen: set[int] = set()
        total = 0
        for entry in map(self._encoded, results):
            layout = entry[1]
            held = chain((entry,), entry, layout, layout[1], chain.from_iterable(layout[1]))
            for obj in held:
                if id(obj) not in seen:
                    seen.add(id(obj))
                    total += sys.getsizeof(obj)
        return total

    def _encoded(self, result: Result) -> Entry:
        if isinstance(result, Policy):
            if self._policy is None or self._policy[0] is not result:
                self._policy = (result, _encode(result))
            return self._policy[1]
        layout = result.rendered
        if layout is None:
            entry = _encode(result)
            # Results are frozen: their rendering is the slots set after they are made, once,
            # and it is not part of their value (see results.py). Three slots, not the entry
            # tuple: 48 bytes less for each result held.
            object.__setattr__(result, "rendered_identity", entry[0])
            object.__setattr__(result, "rendered_values", entry[2])
            object.__setattr__(result, "rendered", entry[1])
            return entry
        return result.rendered_identity, cast(Layout, layout), result.rendered_values

    def render_parts(self, results: Iterable[Result]) -> list[bytes | bytearray]:
        """The exposition as a few large parts (a header, then one family's lines), in
        family order: a response can write them without joining them first.

        Nothing of a scrape is kept after it: at fleet scale a copy of the last body would
        be as large again as everything the templates hold.
        """
        by_family = [bytearray() for _ in _HEADERS]
        for r in results:
            identity, (shared_at, shared, own_at, own_format), own = self._encoded(r)
            join = identity.join
            # Each joined piece is appended and freed at once: a scrape holds little beyond
            # the body it returns.
            for index, template in zip(shared_at, shared, strict=True):
                by_family[index] += join(template)
            if own_at:
                texts = (own_format % tuple(own.split(b" "))).split(_END)
                for index, text in zip(own_at, texts, strict=True):
                    by_family[index] += text.replace(_MARK, identity)
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
