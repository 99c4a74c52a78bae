"""The files source's walk on hostile trees: symlink loops, ``up -> ..``, FIFOs, devices,
unreadable directories (read by ``nobody``), globs that match nothing, invalid patterns, the
file cap and the timeout, and SIGTERM in the middle of a long walk.

Every tree is built here with real symlinks, FIFOs and permissions; the non-root case runs the
reader in a forked child that has dropped to ``nobody``, because root reads a 000 directory.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certscope import cli
from certscope.collector import MAX_ITEM_ERROR_SERIES, source_fragments
from certscope.config import FilesSource, load_config
from certscope.errors import ConfigError, ItemFailure
from certscope.results import ItemError, SourceResult
from certscope.sources.base import MAX_LOGGED_ERRORS, log_new_errors
from certscope.sources.files import FilesReader
from helpers.exporter import Exporter
from helpers.pki import TestPKI


@pytest.fixture(scope="module")
def pem(pki: TestPKI) -> bytes:
    return pki.leaf("walk.test").cert.read_bytes()


def _reader(*paths: Path | str, **kwargs: object) -> FilesReader:
    return FilesReader(FilesSource(name="disk", paths=tuple(map(str, paths)), **kwargs))  # type: ignore[arg-type]


def _names(result: SourceResult, root: Path) -> list[str]:
    return sorted(os.path.relpath(c.location, root) for c in result.certs)


def _errors(result: SourceResult, root: Path) -> set[tuple[str, str]]:
    return {(os.path.relpath(e.location, root), e.reason) for e in result.errors}


def _tree(root: Path, pem: bytes) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "one.pem").write_bytes(pem)
    (root / "a" / "b" / "two.pem").write_bytes(pem)
    (root / "a" / "b" / "up").symlink_to("..")  # up -> ..
    (root / "a" / "self").symlink_to(".")  # loop -> .
    (root / "a" / "again").symlink_to(".")  # a second one: the walk never finished before
    (root / "outside").mkdir()
    (root / "outside" / "three.pem").write_bytes(pem)
    (root / "a" / "ext").symlink_to(root / "outside")  # a real directory elsewhere


async def test_double_star_does_not_follow_directory_symlinks(tmp_path: Path, pem: bytes) -> None:
    _tree(tmp_path, pem)
    started = time.monotonic()
    result = await _reader(tmp_path / "a" / "**" / "*.pem").refresh(None)
    assert time.monotonic() - started < 5
    assert _names(result, tmp_path) == ["a/b/two.pem", "a/one.pem"]  # each once
    assert result.errors == ()


async def test_follow_symlinks_enters_each_directory_once(tmp_path: Path, pem: bytes) -> None:
    _tree(tmp_path, pem)
    reader = _reader(tmp_path / "a" / "**" / "*.pem", follow_symlinks=True)
    started = time.monotonic()
    result = await reader.refresh(None)
    assert time.monotonic() - started < 5
    # ext -> outside is followed; up, self and again lead back to directories already walked.
    assert _names(result, tmp_path) == ["a/b/two.pem", "a/ext/three.pem", "a/one.pem"]
    assert result.errors == ()


async def test_plain_symlinked_directory_segment_is_followed(tmp_path: Path, pem: bytes) -> None:
    _tree(tmp_path, pem)  # a literal or single-star segment is not recursion: it is followed
    result = await _reader(tmp_path / "a" / "ext" / "*.pem").refresh(None)
    assert _names(result, tmp_path) == ["a/ext/three.pem"]


async def test_fifo_device_and_symlink_loops_never_hang(tmp_path: Path, pem: bytes) -> None:
    os.mkfifo(tmp_path / "pipe.pem")  # nothing ever writes: opening it for reading would block
    (tmp_path / "zero.pem").symlink_to("/dev/zero")  # endless bytes
    (tmp_path / "loop1.pem").symlink_to(tmp_path / "loop2.pem")
    (tmp_path / "loop2.pem").symlink_to(tmp_path / "loop1.pem")
    (tmp_path / "good.pem").write_bytes(pem)
    started = time.monotonic()
    result = await _reader(tmp_path / "*.pem", tmp_path / "pipe.pem").refresh(None)
    assert time.monotonic() - started < 5
    assert _names(result, tmp_path) == ["good.pem"]
    assert _errors(result, tmp_path) == {
        ("pipe.pem", "unreadable"),
        ("zero.pem", "unreadable"),
        ("loop1.pem", "unreadable"),
        ("loop2.pem", "unreadable"),
    }


async def test_paths_that_match_nothing_are_errors(tmp_path: Path, pem: bytes) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "x.pem").write_bytes(pem)
    result = await _reader(
        tmp_path / "certs" / "*.crt",  # a glob that matches no file
        tmp_path / "cerst" / "*.pem",  # a typo'd directory
        tmp_path / "certs",  # a directory given as a file
        tmp_path / "missing.pem",  # a plain path that does not exist
        tmp_path / "certs" / "*.pem",
    ).refresh(None)
    assert result.up
    assert _names(result, tmp_path) == ["certs/x.pem"]
    assert _errors(result, tmp_path) == {
        ("certs/*.crt", "no_match"),
        ("cerst/*.pem", "no_match"),
        ("certs", "no_match"),
        ("missing.pem", "not_found"),
    }


async def test_excluded_matches_are_not_no_match(tmp_path: Path, pem: bytes) -> None:
    (tmp_path / "old.pem").write_bytes(pem)
    reader = _reader(tmp_path / "*.pem", exclude=(str(tmp_path / "old*"),))
    result = await reader.refresh(None)
    assert result.certs == () and result.errors == ()


async def test_file_cap_applies_while_walking(tmp_path: Path, pem: bytes) -> None:
    for i in range(30):
        (tmp_path / f"{i:02}.pem").write_bytes(pem)
    result = await _reader(tmp_path / "*.pem", max_files=10).refresh(None)
    assert result.up
    assert len(result.certs) == 10  # what was found is kept
    assert [(e.reason, e.location) for e in result.errors] == [
        ("limit_reached", str(tmp_path / "*.pem"))
    ]
    assert "more than 10 files" in result.errors[0].message


async def test_timeout_cuts_the_walk_short(tmp_path: Path, pem: bytes) -> None:
    (tmp_path / "x.pem").write_bytes(pem)
    result = await _reader(tmp_path / "*.pem", timeout=0.0).refresh(None)
    assert result.up
    assert {e.reason for e in result.errors} == {"limit_reached"}
    assert "timeout" in result.errors[0].message


# --- as a user who cannot read everything -----------------------------------------------------

NOBODY = 65534  # Debian's nobody / nogroup


def _read_as_nobody(*paths: Path) -> dict[str, list[Any]]:
    """The files reader run by ``nobody`` in a forked child (root reads a 000 directory).

    Forked rather than exec'd (``setpriv``/``runuser``): the child needs no access to the
    interpreter or the checkout, wherever they lie.
    """
    reader = FilesReader(FilesSource(name="disk", paths=tuple(map(str, paths))))
    rd, wr = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns about fork in a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: drop root, read, report, exit without running pytest's cleanup
        status = 1
        try:
            os.close(rd)
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            certs, errors, _ = reader._read_all(threading.Event())
            report = {
                "certs": [c.location for c in certs],
                "errors": [[e.location, e.reason] for e in errors],
            }
            os.write(wr, json.dumps(report).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(wr)
    with os.fdopen(rd, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    got: dict[str, list[Any]] = json.loads(data)
    return got


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory ``nobody`` can enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="certscope-walk-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for p in path.rglob("*"):
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o755)
        shutil.rmtree(path)


def test_unreadable_directories_as_non_root(shared_dir: Path, pem: bytes) -> None:
    (shared_dir / "open").mkdir()
    (shared_dir / "open" / "ok.pem").write_bytes(pem)
    (shared_dir / "open" / "ok.pem").chmod(0o644)
    (shared_dir / "open").chmod(0o755)
    closed = shared_dir / "closed"
    closed.mkdir()
    (closed / "secret.pem").write_bytes(pem)
    closed.chmod(0o000)
    (shared_dir / "private.pem").write_bytes(pem)
    (shared_dir / "private.pem").chmod(0o600)
    got = _read_as_nobody(shared_dir / "**" / "*.pem", closed / "secret.pem", closed / "*.pem")
    assert [os.path.relpath(c, shared_dir) for c in got["certs"]] == ["open/ok.pem"]
    errors = {(os.path.relpath(loc, shared_dir), reason) for loc, reason in got["errors"]}
    assert errors == {
        ("closed", "permission_denied"),  # the ** walk could not list it
        ("closed/secret.pem", "permission_denied"),  # never not_found
        ("private.pem", "permission_denied"),
    }


# --- configuration -------------------------------------------------------------------------------


def test_invalid_patterns_are_config_errors(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "sources:\n"
        "  - name: disk\n"
        "    kind: files\n"
        "    paths: ['/etc/ssl/**.pem', '/etc/ssl/[abc.pem', '/etc/ssl/*.pem']\n"
        "    exclude: ['/etc/ssl/old/a**b']\n"
        "    max_files: 0\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(str(config))
    where = {p.location for p in info.value.problems}
    assert where == {
        "sources[0].paths[0]",
        "sources[0].paths[1]",
        "sources[0].exclude[0]",
        "sources[0].max_files",
    }
    assert cli.main(["check-config", str(config)]) == 1


def test_walk_settings_are_read(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "sources:\n"
        "  - {name: disk, kind: files, paths: ['/etc/ssl/**/*.pem'], follow_symlinks: true,\n"
        "     max_files: 500, timeout: 5s}\n"
    )
    source = load_config(str(config)).sources[0]
    assert isinstance(source, FilesSource)
    assert (source.follow_symlinks, source.max_files, source.timeout) == (True, 500, 5.0)
    assert FilesSource(name="x", paths=()).follow_symlinks is False  # the default


# --- every error has a place ---------------------------------------------------------------------


def _result(errors: list[ItemError]) -> SourceResult:
    return SourceResult("disk", "files", (("team", "pki"),), 0, 0, True, (), tuple(errors), 0)


def test_item_error_info_is_bounded_per_source() -> None:
    errors = [ItemError(f"/certs/{i:03}.pem", ItemFailure.UNPARSEABLE, "x") for i in range(150)]
    errors.append(
        ItemError("/certs/000.pem", ItemFailure.UNPARSEABLE, "again")
    )  # one series, not two
    lines = source_fragments(_result(errors))["certscope_source_item_error_info"]
    assert len(lines) == MAX_ITEM_ERROR_SERIES == 100
    assert lines[0] == (
        'certscope_source_item_error_info{source_kind="files",source="disk",'
        'location="/certs/000.pem",team="pki",reason="unparseable"} 1\n'
    )
    counts = source_fragments(_result(errors))["certscope_source_item_errors"]
    assert counts == [
        'certscope_source_item_errors{source_kind="files",source="disk",team="pki",'
        'reason="unparseable"} 151\n'
    ]


def test_a_new_error_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    first = _result([ItemError("/a.pem", ItemFailure.PERMISSION_DENIED, "Permission denied")])
    with caplog.at_level(logging.WARNING, logger="certscope.sources"):
        log_new_errors(first, None)
        log_new_errors(first, first)  # the same error on the next refresh: not again
        second = _result([*first.errors, ItemError("/b.pem", ItemFailure.NO_MATCH, "nothing")])
        log_new_errors(second, first)
    assert [r.getMessage() for r in caplog.records] == [
        "source disk: /a.pem: permission_denied: Permission denied",
        "source disk: /b.pem: no_match: nothing",
    ]


def test_a_flood_of_new_errors_is_summarised(caplog: pytest.LogCaptureFixture) -> None:
    many = _result([ItemError(f"/{i}.pem", ItemFailure.UNPARSEABLE, "x") for i in range(50)])
    with caplog.at_level(logging.WARNING, logger="certscope.sources"):
        log_new_errors(many, None)
    assert len(caplog.records) == MAX_LOGGED_ERRORS + 1
    assert "30 more new item errors" in caplog.records[-1].getMessage()


def test_inventory_command_reports_item_errors(
    tmp_path: Path, pem: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "good.pem").write_bytes(pem)
    (tmp_path / "bad.pem").write_bytes(
        b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n"
    )
    config = tmp_path / "config.yml"
    config.write_text(
        f"sources:\n  - {{name: disk, kind: files, paths: ['{tmp_path}/*.pem', '{tmp_path}/none/*']}}\n"
    )
    assert cli.main(["inventory", "--config.file", str(config), "--format", "json"]) == 1
    out, err = capsys.readouterr()
    assert f"certscope: source disk: {tmp_path}/bad.pem#0: corrupt_pem: " in err
    assert f"certscope: source disk: {tmp_path}/none/*: no_match: " in err
    rows = json.loads(out)
    assert isinstance(rows, list)  # the top level stays a list
    errors = [(r["location"], r["attributes"]["reason"]) for r in rows if r["kind"] == "error"]
    assert errors == [(f"{tmp_path}/bad.pem#0", "corrupt_pem"), (f"{tmp_path}/none/*", "no_match")]
    assert [r["kind"] for r in rows].count("certificate") == 1
    args = ["inventory", "--config.file", str(config), "--accept-item-errors"]
    assert cli.main(args) == 0
    csv_out, err = capsys.readouterr()
    assert "corrupt_pem" in err
    assert f"error,files,disk,{tmp_path}/bad.pem#0," in csv_out


# --- SIGTERM during a long walk ---------------------------------------------------------------


def _ready_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def test_sigterm_stops_the_exporter_mid_walk(tmp_path: Path, pem: bytes) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "orig.pem").write_bytes(pem * 100)  # a bundle: each file takes a while to parse
    for d in range(20):  # 4,000 bundles, 400,000 certificates: a refresh of a minute or more
        sub = tree / f"d{d}"
        sub.mkdir()
        for i in range(200):
            os.link(tree / "orig.pem", sub / f"{i}.pem")
    config = tmp_path / "config.yml"
    config.write_text(
        f"sources:\n  - {{name: big, kind: files, paths: ['{tree}/**/*.pem'], timeout: 10m}}\n"
    )
    log = tmp_path / "exporter.log"
    exporter = Exporter(config, log)
    exporter.launch()
    assert exporter.proc is not None
    try:
        deadline = time.monotonic() + 30
        while (status := _ready_status(exporter.url)) is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        # Up, and the walk under way: /-/ready says the first round is not done.
        assert status == 503, "the walk finished before SIGTERM: the tree is too small"
        time.sleep(1)
        started = time.monotonic()
        exporter.proc.send_signal(signal.SIGTERM)
        exporter.proc.wait(15)
        assert time.monotonic() - started < 5, log.read_text()
    finally:
        exporter.stop()


async def test_relative_patterns_give_relative_locations(
    tmp_path: Path, pem: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "top.pem").write_bytes(pem)
    (tmp_path / "sub" / "deep.pem").write_bytes(pem)
    monkeypatch.chdir(tmp_path)
    result = await _reader("*.pem", "**/deep.pem").refresh(None)
    assert sorted(c.location for c in result.certs) == ["sub/deep.pem", "top.pem"]
