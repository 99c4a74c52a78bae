"""The SSH algorithm database: every algorithm with its class, the reason and the source of the
judgement, kept as data in ``data/algorithms.csv``.

Classes, worst first:

* ``broken``: practical attacks or no protection (RC4, 3DES, DSA, MD5, group1);
* ``weak``: a weakness that matters (SHA-1, CBC mode, 64-bit tags with encrypt-and-MAC);
* ``deprecated``: no known practical attack, but current guidance prefers something else
  (NIST curves, encrypt-and-MAC, 2048-bit MODP);
* ``recommended``: what current OpenSSH offers by default and public guidance recommends.

Two more values are not judgements: ``extension`` for the pseudo-algorithms that announce
protocol extensions (``ext-info-s``, ``kex-strict-s-v00@openssh.com``) and ``unknown`` for a
name the database does not hold (reported, never counted as a pass or a failure).
The judgements follow RFC 9142 (key exchange), RFC 8332 and RFC 8758, the defaults of
OpenSSH, ssh-audit's published findings and Mozilla's OpenSSH guidelines, as facts; the
``source`` column of each row says which.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources

__all__ = ["KINDS", "Algorithm", "AlgorithmClass", "classify", "database"]

KINDS = ("kex", "host_key", "cipher", "mac", "compression")


class AlgorithmClass(StrEnum):
    BROKEN = "broken"
    WEAK = "weak"
    DEPRECATED = "deprecated"
    RECOMMENDED = "recommended"
    EXTENSION = "extension"
    UNKNOWN = "unknown"


#: Judged classes, worst first (``extension`` and ``unknown`` are not judgements).
JUDGED = (
    AlgorithmClass.BROKEN,
    AlgorithmClass.WEAK,
    AlgorithmClass.DEPRECATED,
    AlgorithmClass.RECOMMENDED,
)


@dataclass(frozen=True)
class Algorithm:
    kind: str
    name: str
    cls: AlgorithmClass
    reason: str
    source: str


@cache
def database() -> dict[tuple[str, str], Algorithm]:
    text = resources.files(__package__).joinpath("data/algorithms.csv").read_text("utf-8")
    out: dict[tuple[str, str], Algorithm] = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row["kind"] not in KINDS:
            raise ValueError(f"algorithms.csv: unknown kind {row['kind']!r}")
        key = (row["kind"], row["algorithm"])
        if key in out:
            raise ValueError(f"algorithms.csv: {key} listed twice")
        out[key] = Algorithm(
            row["kind"],
            row["algorithm"],
            AlgorithmClass(row["class"]),
            row["reason"],
            row["source"],
        )
    return out


def classify(kind: str, name: str) -> Algorithm:
    """The database entry, or an ``unknown`` one for a name it does not hold."""
    found = database().get((kind, name))
    if found is not None:
        return found
    return Algorithm(kind, name, AlgorithmClass.UNKNOWN, "not in certscope's database", "")
