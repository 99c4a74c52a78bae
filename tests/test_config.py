"""Config loading and validation: every problem listed with its location, nothing started."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from certscope.config import (
    FilesSource,
    default_config,
    format_duration,
    load_config,
    parse_config,
    parse_duration,
)
from certscope.errors import ConfigError
from certscope.net import split_address

CERTSCOPE = [sys.executable, "-m", "certscope.cli"]

ISSUE_EXAMPLE = """
defaults:
  interval: 5m
  timeout: 10s
targets:
  - address: 127.0.0.1:8443        # host:port, IPv6 as [::1]:8443
    name: web                       # optional, defaults to the address
    sni: web.example.test           # optional, defaults to the host
    ca_file: {ca}                   # optional, defaults to the system store
    labels: {{owner: payments, renewal: acme}}
probe:
  allowed_targets: ["127.0.0.1:*", "*.example.test:443"]   # patterns /probe may reach
"""


@pytest.fixture
def ca_file(tmp_path: Path) -> str:
    import trustme

    ca = trustme.CA()
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "test.yml")
    return [str(p) for p in info.value.problems]


def test_documented_example_is_accepted(ca_file: str) -> None:
    cfg = parse_config(ISSUE_EXAMPLE.format(ca=ca_file), "example.yml")
    (t,) = cfg.targets
    assert (t.name, t.host, t.port) == ("web", "127.0.0.1", 8443)
    assert t.server_name == "web.example.test"
    assert t.tls.ca_file == ca_file
    assert t.interval == 300 and t.tls.timeout == 10
    assert dict(t.labels) == {"owner": "payments", "renewal": "acme"}
    assert cfg.probe.allowed_targets == ("127.0.0.1:*", "*.example.test:443")


def test_defaults_apply_and_targets_override(ca_file: str) -> None:
    cfg = parse_config(
        f"""
defaults: {{interval: 1h, timeout: 3s, ca_file: {ca_file}, labels: {{environment: prod}}}}
targets:
  - address: a.example.test:443
  - address: "[::1]:8443"
    interval: 90s
    timeout: 500ms
    labels: {{environment: staging, owner: web}}
""",
        "t.yml",
    )
    a, b = cfg.targets
    assert a.interval == 3600 and a.tls.timeout == 3 and a.tls.ca_file == ca_file
    assert dict(a.labels) == {"environment": "prod"}
    assert a.name == "a.example.test:443" and a.server_name == "a.example.test"
    assert (b.host, b.port, b.address) == ("::1", 8443, "[::1]:8443")
    assert b.server_name is None  # no SNI for IP addresses
    assert b.interval == 90 and b.tls.timeout == 0.5
    assert dict(b.labels) == {"environment": "staging", "owner": "web"}


def test_every_problem_is_listed_with_its_location() -> None:
    found = problems(
        """
defaults: {interval: soon}
targets:
  - address: 127.0.0.1:443
    name: web
  - address: 127.0.0.1:70000
  - address: "::1:443"
  - {host: db.example.test, port: 0}
  - {address: 127.0.0.1:8443, name: web, tiemout: 3s}
  - {address: x.test:443, starttls: gopher, labels: {job: x, "bad-name": y}}
  - {address: y.test:443, ca_file: /nonexistent/ca.pem}
  - {address: z.test:443, interval: 10s, timeout: 30s}
  - {address: w.test:443, client_cert: /nonexistent/c.pem}
  - just-a-string
probe: {allowed_targets: ["no-port"]}
extra: 1
"""
    )
    expected = [
        "defaults.interval: 'soon' is not a duration such as 30s, 5m or 6h",
        "targets[1].port: must be 1-65535, got 70000",
        "targets[2].address: IPv6 addresses are written [addr]:port",
        "targets[3].port: must be 1-65535, got 0",
        'targets[4].tiemout: unknown key (did you mean "timeout"?)',
        "targets[4].name: duplicate target name 'web' (first at targets[0])",
        "targets[5].starttls: must be one of smtp, imap, pop3, ftp, ldap, postgres, mysql",
        "targets[5].labels.job: is a label name certscope sets itself; choose another",
        "targets[5].labels.bad-name: is not a valid Prometheus label name",
        "targets[6].ca_file: cannot read /nonexistent/ca.pem: No such file or directory",
        "targets[7].timeout: must be shorter than the interval",
        "targets[8].client_cert: cannot read /nonexistent/c.pem: No such file or directory",
        "targets[9]: must be a mapping, got a string",
        "probe.allowed_targets[0]: patterns are host:port, e.g. '*.example.com:443'",
        "extra: unknown key",
    ]
    for line in expected:
        assert line in found, f"missing {line!r} in {found}"


def test_malformed_yaml_reports_line_and_column() -> None:
    found = problems("targets:\n  - address: [unclosed\n")
    assert len(found) == 1
    assert found[0].startswith("line 3, column 1: malformed YAML")


def test_wrong_types_are_reported() -> None:
    found = problems("targets: {address: a:1}\ndefaults: [1]\nscheduler: {concurrency: 0}\n")
    assert "targets: must be a list, got a mapping" in found
    assert "defaults: must be a mapping, got a list" in found
    assert "scheduler.concurrency: must be a number from 1 to 10000" in found


def test_ca_file_without_certificates_is_rejected(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    found = problems(f"targets: [{{address: a.test:443, ca_file: {bogus}}}]")
    assert found == [f"targets[0].ca_file: {bogus} contains no PEM certificate"]


def test_unknown_source_kind_and_vault_problems() -> None:
    found = problems(
        "sources:\n"
        "  - {name: a, kind: ldap}\n"
        "  - {name: v, kind: vault, address: vault:8200, auth: {method: token}}\n"
        "  - {name: k, kind: kubernetes, qps: 0, labels_from_annotations: {owner: x/y, bad-label: z}}\n"
    )
    assert (
        "sources[0].kind: must be one of files, kubernetes, vault, ssh_authorized_keys, aws"
        in found
    )
    assert "sources[1].address: must start with http:// or https://" in found
    assert "sources[1].auth: token auth needs token_file or token_env" in found
    assert "sources[1]: a vault source needs at least one kv or pki entry" in found
    assert "sources[2].qps: must be a number from 0.1 to 1000" in found
    assert (
        "sources[2].labels_from_annotations.bad-label: is not a valid Prometheus label name"
        in found
    )


def test_files_source() -> None:
    cfg = parse_config(
        """
sources:
  - name: host-certs
    kind: files
    paths: ["/etc/ssl/certs/*.pem", "/srv/tls/**/*.crt"]
    exclude: ["**/old/**"]
""",
        "s.yml",
    )
    (s,) = cfg.sources
    assert isinstance(s, FilesSource)
    assert s.paths == ("/etc/ssl/certs/*.pem", "/srv/tls/**/*.crt")
    assert s.exclude == ("**/old/**",)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("500ms", 0.5), ("1d", 86400), (15, 15)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "5", "5 minutes", "-1s", "0s", True, None])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match=r"duration|positive"):
        parse_duration(bad)


def test_format_duration_round_trips() -> None:
    for text in ("30s", "5m", "1h30m", "1d", "500ms"):
        assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("example.com:443", ("example.com", 443)),
        ("[2001:db8::1]:8443", ("2001:db8::1", 8443)),
        ("10.0.0.1:1", ("10.0.0.1", 1)),
    ],
)
def test_split_address(address: str, expected: tuple[str, int]) -> None:
    assert split_address(address) == expected


@pytest.mark.parametrize("bad", ["example.com", ":443", "a b:443", "[::1]443", "[zz]:1", "h:x"])
def test_split_address_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        split_address(bad)


def test_default_config_inventories_the_trust_store_and_reads_env() -> None:
    cfg = default_config({"CERTSCOPE_TARGETS": "a.example.test:443, [::1]:8443"})
    assert [t.address for t in cfg.targets] == ["a.example.test:443", "[::1]:8443"]
    (src,) = cfg.sources
    assert isinstance(src, FilesSource)
    assert src.name == "system-trust-store" and src.kind == "files"
    assert all(Path(p.split("*")[0]).exists() for p in src.paths)


def test_default_config_rejects_bad_env() -> None:
    with pytest.raises(ConfigError, match=r"targets\[0\]\.address"):
        default_config({"CERTSCOPE_TARGETS": "no-port"})


def test_check_config_command(tmp_path: Path, ca_file: str) -> None:
    good = tmp_path / "good.yml"
    good.write_text(ISSUE_EXAMPLE.format(ca=ca_file))
    ok = subprocess.run([*CERTSCOPE, "check-config", str(good)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "1 targets" in ok.stdout

    bad = tmp_path / "bad.yml"
    bad.write_text("targets:\n  - {address: a.test:0}\n  - {address: b.test:443, wat: 1}\n")
    res = subprocess.run([*CERTSCOPE, "check-config", str(bad)], capture_output=True, text=True)
    assert res.returncode == 1
    assert f"invalid configuration in {bad}" in res.stderr
    assert "targets[0].port: must be 1-65535, got 0" in res.stderr
    assert "targets[1].wat: unknown key" in res.stderr


def test_serve_refuses_a_bad_config_and_starts_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("targets: [{address: 'a.test:99999'}]\n")
    res = subprocess.run(
        [*CERTSCOPE, "serve", "--config.file", str(bad), "--web.listen-address", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 1
    assert "targets[0].port: must be 1-65535, got 99999" in res.stderr


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match=r"cannot read /nonexistent\.yml"):
        load_config("/nonexistent.yml")
