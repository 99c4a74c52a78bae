"""The reason vocabulary: the enums in certscope.errors are the documented label values.

docs/metrics.md lists every vocabulary in its "Reason values" table; the values are a public
contract, so the table, the detailed sections and the code must not drift apart.
"""

from __future__ import annotations

import ast
import functools
import re
from collections import Counter
from enum import StrEnum
from pathlib import Path

import pytest

from certscope import errors
from certscope.tls import enumerate as tls_enumerate
from certscope.tls import hello as tls_hello

METRICS_MD = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"

VOCABULARIES: dict[str, type[StrEnum]] = {
    "ProbeFailure": errors.ProbeFailure,
    "VerifyFailure": errors.VerifyFailure,
    "ScanFailure": errors.ScanFailure,
    "HelloFailure": errors.HelloFailure,
    "SourceFailure": errors.SourceFailure,
    "ItemFailure": errors.ItemFailure,
}

#: Vocabularies whose label values each have a meaning written out above the table.
EXPLAINED = ("ProbeFailure", "VerifyFailure", "SourceFailure", "ItemFailure")


def _reason_table(text: str) -> dict[str, list[str]]:
    section = text.split("\n## Reason values\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = re.findall(r"`([a-z0-9_]+)`", cells[2])
    return rows


def test_the_reason_table_lists_every_vocabulary() -> None:
    assert set(_reason_table(METRICS_MD.read_text())) == set(VOCABULARIES)


@pytest.mark.parametrize("name", sorted(VOCABULARIES))
def test_documented_values_equal_the_enum(name: str) -> None:
    documented = _reason_table(METRICS_MD.read_text())[name]
    assert len(documented) == len(set(documented)), f"{name}: a value is listed twice"
    assert documented == [m.value for m in VOCABULARIES[name]]


@pytest.mark.parametrize("name", EXPLAINED)
def test_every_value_is_explained_outside_the_table(name: str) -> None:
    text = METRICS_MD.read_text()
    prose = text.split("\n## Reason values\n", 1)[0]
    missing = [m.value for m in VOCABULARIES[name] if f"`{m.value}`" not in prose]
    assert not missing, f"{name} values with no meaning in docs/metrics.md: {missing}"


def test_values_are_label_safe_and_unique_per_vocabulary() -> None:
    for name, enum in VOCABULARIES.items():
        values = [m.value for m in enum]
        assert len(values) == len(set(values)), name
        for value in values:
            assert re.fullmatch(r"[a-z][a-z0-9_]*", value), (name, value)


def test_the_tls_packages_use_the_shared_vocabulary() -> None:
    # One definition: the TLS packages re-export the enums of certscope.errors, not copies.
    assert tls_enumerate.ScanFailure is errors.ScanFailure
    assert tls_hello.HelloFailure is errors.HelloFailure


# --- broad except ------------------------------------------------------------------------------

PACKAGE = Path(errors.__file__).resolve().parent
ARCHITECTURE_MD = METRICS_MD.parent / "architecture.md"
BROAD = frozenset({"Exception", "BaseException", "BaseExceptionGroup", "ExceptionGroup", ""})

SCHEDULER = "scheduler job boundary"
PROBE = "probe boundary: a bug costs one probe or scan, reported as internal_error"
SOURCE = "source read boundary: a failing refresh or watch keeps the last good data"
HTTP = "HTTP handler boundary: a reload never stops the exporter"
UNTRUSTED = "parse of untrusted bytes: the library raises arbitrary errors"
UNWRAP = "TaskGroup: re-raises the group's first error as itself (CancelledError included)"

#: Every broad handler that does not simply clean up and ``raise``: (module, function) → why.
#: docs/architecture.md ("Errors are data") lists the same boundaries.
BOUNDARIES: dict[tuple[str, str], tuple[str, int]] = {
    ("scheduler.py", "Scheduler._run_job"): (SCHEDULER, 1),
    ("app.py", "reload_config"): (HTTP, 1),
    ("probe.py", "probe"): (PROBE, 1),
    ("ssh/probe.py", "probe_target"): (PROBE, 1),
    ("tls/enumerate/base.py", "Scan.guard"): (PROBE, 1),
    ("tls/enumerate/scan.py", "enumerate_posture"): (PROBE, 1),
    ("sources/files.py", "FilesReader.refresh"): (SOURCE, 1),
    ("sources/vault.py", "VaultReader.refresh"): (SOURCE, 1),
    ("sources/ssh_keys.py", "SSHKeysReader.refresh"): (SOURCE, 1),
    ("sources/aws/reader.py", "AwsReader.refresh"): (SOURCE, 1),
    ("sources/kubernetes/reader.py", "KubernetesReader.refresh"): (SOURCE, 1),
    ("sources/kubernetes/reader.py", "KubernetesReader._run_stream"): (SOURCE, 1),
    ("sources/kubernetes/reader.py", "KubernetesReader._publisher"): (SOURCE, 1),
    ("config/load.py", "parse_config"): (UNTRUSTED, 1),
    ("certs.py", "_signature"): (UNTRUSTED, 1),
    ("certs.py", "_self_signed"): (UNTRUSTED, 1),
    ("certs.py", "_try"): (UNTRUSTED, 1),
    ("certs.py", "_parse"): (UNTRUSTED, 1),
    ("sources/files.py", "FilesReader._read_one"): (UNTRUSTED, 1),
    ("sources/formats.py", "parse_keystore"): (UNTRUSTED, 1),
    ("sources/formats.py", "_open_entry"): (UNTRUSTED, 1),
    ("sources/pkcs12.py", "_key_bags"): (UNTRUSTED, 1),
    ("sources/kubernetes/reader.py", "KubernetesReader._load_config"): (UNTRUSTED, 1),
    ("sources/vault.py", "_map_bounded"): (UNWRAP, 1),
}

#: BaseException handlers that clean up and re-raise everything but one exception type they
#: handle (so CancelledError still propagates): (module, function) → what they keep.
FILTERS: dict[tuple[str, str], str] = {
    ("tls/enumerate/connection.py", "Endpoint._connect"): "an OSError while addresses remain",
}


def _caught(node: ast.expr | None) -> set[str]:
    if node is None:
        return {""}  # a bare ``except:``
    if isinstance(node, ast.Tuple):
        return set().union(*(_caught(e) for e in node.elts))
    if isinstance(node, ast.Name):
        return {node.id}
    if isinstance(node, ast.Attribute):
        return {node.attr}
    return set()


class _BroadHandlers(ast.NodeVisitor):
    def __init__(self, module: str) -> None:
        self.module = module
        self.scope: list[str] = []
        self.found: list[tuple[str, str, set[str], bool]] = []

    def _enter(self, node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_ClassDef = visit_FunctionDef = visit_AsyncFunctionDef = _enter

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        caught = _caught(node.type)
        if caught & BROAD:
            last = node.body[-1]
            cleanup = isinstance(last, ast.Raise) and last.exc is None  # clean up, then raise
            self.found.append((self.module, ".".join(self.scope), caught, cleanup))
        self.generic_visit(node)


@functools.cache
def _broad_handlers() -> list[tuple[str, str, set[str], bool]]:
    found: list[tuple[str, str, set[str], bool]] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        visitor = _BroadHandlers(path.relative_to(PACKAGE).as_posix())
        visitor.visit(ast.parse(path.read_text(), str(path)))
        found.extend(visitor.found)
    return found


def test_broad_except_only_at_documented_boundaries() -> None:
    counted = Counter(
        (m, f) for m, f, _, cleanup in _broad_handlers() if not cleanup and (m, f) not in FILTERS
    )
    allowed = Counter({k: n for k, (_, n) in BOUNDARIES.items()})
    assert dict(counted) == dict(allowed)


def test_cancellation_is_never_swallowed() -> None:
    # ``except Exception`` does not catch CancelledError; BaseException handlers must end in a
    # bare ``raise`` (cleanup), re-raise all but one reviewed type (FILTERS), or be the
    # TaskGroup unwrapping, which raises the first error.
    for module, function, caught, cleanup in _broad_handlers():
        if caught & {"BaseException", "BaseExceptionGroup", ""} and not cleanup:
            if (module, function) in FILTERS:
                continue
            assert BOUNDARIES.get((module, function), ("", 0))[0] == UNWRAP, (module, function)


def test_the_boundaries_are_documented() -> None:
    text = ARCHITECTURE_MD.read_text()
    section = text.split("**Errors are data.**", 1)[1].split("\n- **", 1)[0]
    for module, function in BOUNDARIES:
        assert f"`{module}`" in section or f"`{function}`" in section, (module, function)
