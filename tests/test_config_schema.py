"""The shape of the configuration: nested locations, unknown keys with suggestions, every
problem in one error, enumerations taken from the modules that implement them, and the
package's import direction."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from certscope.config import (
    CIPHER_CLASSES,
    PROTOCOL_NAMES,
    RULE_IDS,
    SOURCE_KINDS,
    SSH_ALGORITHM_CLASSES,
    STARTTLS_PROTOCOLS,
    Waiver,
    parse_config,
)
from certscope.errors import ConfigError
from certscope.policy import Rule
from certscope.ssh.algorithms import AlgorithmClass
from certscope.tls.starttls import PREAMBLES
from certscope.tls.suites import PROTOCOLS, SuiteClass
from certscope.trust import system_ca_paths


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "test.yml")
    return [str(p) for p in info.value.problems]


def test_nested_list_items_are_located_by_index() -> None:
    found = problems(
        """
sources:
  - name: v
    kind: vault
    address: https://vault.test
    auth: {method: token, token_env: VAULT_TOKEN}
    kv: [{mount: secret}, {path: app}]
    pki: [{mount: pki}, {mount: pki2, include_revoked: yes-please}]
  - name: cloud
    kind: aws
    regions: [eu-west-1, moon-base]
  - name: disk
    kind: files
    paths: [/etc/ssl/certs/*.pem, "/srv/[tls/*.pem"]
probe: {allowed_networks: [10.0.0.0/8, not-a-network]}
policy:
  exceptions:
    - {target: web, rule: cert_expired, owner: pki, reason: why, expires: 2027-01-01}
    - {target: web, rule: no_such_rule, owner: pki, reason: why, expires: 2027-01-01}
"""
    )
    assert "sources[0].kv[1].mount: is required" in found
    assert "sources[0].pki[1].include_revoked: must be true or false, got a string" in found
    assert "sources[1].regions[1]: 'moon-base' is not an AWS region name such as us-east-1" in found
    assert any(p.startswith("sources[2].paths[1]: ") for p in found), found
    assert any(p.startswith("probe.allowed_networks[1]: is not a network") for p in found)
    assert any(
        p.startswith("policy.exceptions[1].rule: unknown rule 'no_such_rule'") for p in found
    )
    # The valid entries around them are not blamed.
    assert not any(p.startswith(("sources[0].kv[0]", "sources[0].pki[0]")) for p in found)
    assert not any(
        p.startswith(("probe.allowed_networks[0]", "policy.exceptions[0]")) for p in found
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("defaults: {intervall: 5m}", 'defaults.intervall: unknown key (did you mean "interval"?)'),
        (
            "targets: [{address: a.test:443, revocation: {ocps: false}}]",
            'targets[0].revocation.ocps: unknown key (did you mean "ocsp"?)',
        ),
        (
            "probe: {modules: {mail: {startls: smtp}}}",
            'probe.modules.mail.startls: unknown key (did you mean "starttls"?)',
        ),
        (
            "policy: {ssh: {min_rsa_bit: 4096}}",
            'policy.ssh.min_rsa_bit: unknown key (did you mean "min_rsa_bits"?)',
        ),
        (
            "sources: [{name: v, kind: vault, address: https://v.test, kv: [{mount: kv}],"
            " auth: {method: token, token_fiel: /t}}]",
            'sources[0].auth.token_fiel: unknown key (did you mean "token_file"?)',
        ),
        (
            "sources: [{name: k, kind: kubernetes, namespace: [a]}]",
            'sources[0].namespace: unknown key (did you mean "namespaces"?)',
        ),
        ("scheduler: {zzz: 1}", "scheduler.zzz: unknown key"),
        (
            "policy: {exceptions: [{tagret: web, rule: cert_expired, owner: o, reason: r,"
            " expires: 2027-01-01}]}",
            'policy.exceptions[0].tagret: unknown key (did you mean "target"?)',
        ),
    ],
)
def test_unknown_keys_suggest_the_nearest_known_one(text: str, expected: str) -> None:
    assert expected in problems(text)


def test_every_section_reports_in_one_error() -> None:
    found = problems(
        """
defaults: {timeout: 0s}
scheduler: {jitter: 2}
targets: [{address: a.test:443, starttls: gopher}]
sources: [{name: s, kind: files}]
probe: {max_concurrent: 0}
policy: {min_protocol: TLSv9, ssh: {allowed_algorithm_classes: [excellent]}}
"""
    )
    assert found == [
        "defaults.timeout: must be positive",
        "scheduler.jitter: must be a number from 0 to 1",
        "targets[0].starttls: must be one of " + ", ".join(STARTTLS_PROTOCOLS),
        "sources[0].paths: must list at least one path or glob",
        "probe.max_concurrent: must be a number from 1 to 10000",
        "policy.min_protocol: must be one of " + ", ".join(PROTOCOL_NAMES),
        "policy.ssh.allowed_algorithm_classes: unknown value 'excellent'; allowed: "
        + ", ".join(SSH_ALGORITHM_CLASSES),
    ]


def test_a_mapping_lists_its_unknown_keys_before_its_other_problems() -> None:
    """Keys are read before values: a misspelt key explains the "is required" after it."""
    found = problems(
        "policy:\n  min_rsa_bits: 1\n  ssh: {max_key_age: 0, zzz: 1}\n  exceptions:\n"
        "    - {tgt: web, rule: '{rule}', owner: o, reason: r, expires: 2027-01-01}\n"
        "  mn_protocol: TLSv1.2\n"
    )
    assert found == [
        'policy.mn_protocol: unknown key (did you mean "min_protocol"?)',
        'policy.exceptions[0].tgt: unknown key (did you mean "target"?)',
        "policy.exceptions[0].target: is required",
        # Braces in the input are quoted as they are, not read as a message template.
        "policy.exceptions[0].rule: unknown rule '{rule}'; rules: " + ", ".join(RULE_IDS),
        "policy.min_rsa_bits: must be a number from 512 to 16384",
        "policy.ssh.zzz: unknown key",
        "policy.ssh.max_key_age: must be positive",
    ]


def test_a_key_yaml_reads_as_a_number_is_located_as_a_key() -> None:
    """``1:`` is a mapping's key, not a list's index: ``policy.1``, never ``policy[1]``."""
    assert problems("policy: {1: 2}") == ["policy.1: unknown key"]
    assert problems("defaults: {labels: {1: a}}") == [
        "defaults.labels.1: is not a valid Prometheus label name"
    ]
    assert problems("policy: {exceptions: [{target: a, 2: b}]}")[0] == (
        "policy.exceptions[0].2: unknown key"
    )


def test_enumerations_come_from_the_modules_that_implement_them() -> None:
    assert set(STARTTLS_PROTOCOLS) == set(PREAMBLES)
    assert PROTOCOL_NAMES == PROTOCOLS
    assert tuple(c.value for c in SuiteClass) == CIPHER_CLASSES
    assert set(SSH_ALGORITHM_CLASSES) == {"broken", "weak", "deprecated", "recommended"}
    assert set(SSH_ALGORITHM_CLASSES) < {c.value for c in AlgorithmClass}
    assert SOURCE_KINDS == ("files", "kubernetes", "vault", "ssh_authorized_keys", "aws")


def test_a_waiver_names_exactly_the_rules_the_policy_judges() -> None:
    """A waiver for a rule the policy never reports would silently waive nothing; a rule the
    policy reports but no waiver may name could not be accepted as a risk at all."""
    assert set(RULE_IDS) == {r.value for r in Rule} - {Rule.EXCEPTION_EXPIRED.value}
    assert Rule.EXCEPTION_EXPIRED.value not in RULE_IDS  # a waiver cannot waive its own end


@pytest.mark.parametrize("rule", ["cert_revoked", "sct_missing", "dh_group_too_small"])
def test_waivers_for_the_newer_rules_are_accepted(rule: str) -> None:
    cfg = parse_config(
        "policy:\n  exceptions:\n"
        f"    - {{target: web, rule: {rule}, owner: sec, reason: r, expires: 2099-01-01}}\n",
        "t.yml",
    )
    assert [w.rule for w in cfg.policy.exceptions] == [rule]


@pytest.mark.parametrize("preamble", sorted(PREAMBLES))
def test_every_starttls_preamble_is_accepted(preamble: str) -> None:
    cfg = parse_config(f"targets: [{{address: mail.test:25, starttls: {preamble}}}]", "t.yml")
    assert cfg.targets[0].tls.starttls == preamble


def test_every_cipher_class_and_protocol_is_accepted() -> None:
    for protocol in PROTOCOLS:
        classes = ", ".join(c.value for c in SuiteClass)
        text = f"policy: {{min_protocol: {protocol}, allowed_cipher_classes: [{classes}]}}"
        policy = parse_config(text, "t.yml").policy
        assert policy.min_protocol == protocol
        assert policy.allowed_classes == tuple(c.value for c in SuiteClass)


def test_policy_exceptions_are_waivers() -> None:
    cfg = parse_config(
        "policy:\n  exceptions:\n"
        "    - {target: 'web-*', location: '/a/*', rule: cert_expired, owner: pki,"
        " reason: archive, expires: 2027-03-31}\n",
        "t.yml",
    )
    (waiver,) = cfg.policy.exceptions
    assert isinstance(waiver, Waiver)
    assert waiver.expires == date(2027, 3, 31)
    assert waiver.covers(("web-1", "/a/b.pem"), "cert_expired")
    assert not waiver.covers(("web-1", "/b/b.pem"), "cert_expired")
    assert not waiver.covers(("db-1", "/a/b.pem"), "cert_expired")
    assert not waiver.covers(("web-1", "/a/b.pem"), "cert_not_yet_valid")


def test_system_trust_store_follows_ssl_cert_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    assert system_ca_paths()[0] == str(bundle)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    assert system_ca_paths()[0] != str(tmp_path / "missing.pem")


@pytest.mark.parametrize(
    ("module", "use", "forbidden"),
    [
        ("certscope.config", "certscope.config.default_config({})", "certscope.verify"),
        ("certscope.config", "certscope.config.parse_config(b'{}', 'x')", "certscope.policy"),
        ("certscope.tls.handshake", "None", "certscope.config"),
        ("certscope.net", "certscope.net.a_label('b\\u00fccher.test')", "certscope.certs"),
    ],
)
def test_imports_flow_one_way(module: str, use: str, forbidden: str) -> None:
    """The configuration sits upstream of verification and the handshake, not beside them."""
    code = f"import sys, {module}; {use}; print({forbidden!r} in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


def test_the_listed_keys_are_the_declared_ones() -> None:
    """keys.py, which the chart's values.schema.json is held to, is read from the models the
    configuration is validated with; a key a model declares is accepted in a document."""
    from certscope.config import keys

    assert set(keys.FILES_KEYS) == {
        *keys.SOURCE_COMMON,
        "paths",
        "exclude",
        "follow_symlinks",
        "max_files",
        "timeout",
        "password_env",
        "password_file",
        "revocation",
    }
    assert "kind" in keys.AWS_KEYS and "method" in keys.VAULT_AUTH_KEYS
    assert set(keys.TLS_KEYS) < set(keys.TARGET_KEYS)
    assert set(keys.TLS_ONLY_KEYS) < set(keys.TARGET_KEYS)
    for kind, listed in (
        ("files", keys.FILES_KEYS),
        ("vault", keys.VAULT_KEYS),
        ("kubernetes", keys.K8S_KEYS),
        ("ssh_authorized_keys", keys.SSH_KEYS_KEYS),
        ("aws", keys.AWS_KEYS),
    ):
        # Every listed key is known: a document setting all of them has no unknown key.
        entry = {k: None for k in listed} | {"kind": kind, "name": "s"}
        with pytest.raises(ConfigError) as info:
            parse_config(f"sources: [{json.dumps(entry)}]", "t")
        assert not [p for p in info.value.problems if "unknown key" in p.message], kind


def test_a_bad_option_does_not_hide_the_checks_across_fields_and_entries() -> None:
    """A field with a problem takes its default; the rest of the entry is still judged, so the
    duplicate name, the timeout against the interval and the expected source still fire."""
    found = problems(
        """
targets:
  - {address: a.test:443, name: web, sni: "bad host", timeout: 1m, interval: 30s,
     expects: {source: nowhere}}
  - {address: b.test:443, name: web, revocation: {ocps: false}}
defaults: {timeout: 0s, interval: 40s}
"""
    )
    assert found == [
        "defaults.timeout: must be positive",
        "targets[0].sni: 'bad host' is not a valid host name",
        "targets[0].timeout: must be shorter than the interval",
        'targets[1].revocation.ocps: unknown key (did you mean "ocsp"?)',
        "targets[1].name: duplicate target name 'web' (first at targets[0])",
        "targets[0].expects.source: no source named 'nowhere'",
    ]


def test_a_source_entry_of_the_wrong_shape_is_a_located_problem() -> None:
    """A ``kv`` that is not a list, an entry that is not a mapping, a ``pki`` entry without
    its mount: each is said where it is, and the other keys of the entry are still judged."""
    found = problems(
        """
sources:
  - name: v
    kind: vault
    address: https://vault.test
    auth: {method: token, token_env: VAULT_TOKEN}
    kv: 5
    pki: [7, {include_revoked: yes-please}]
  - {name: v2, kind: vault, address: https://vault.test, kv: [{mount: secret}], auth: 3}
  - {name: disk, kind: files, paths: ["/srv/a**[/x.pem"]}
  - {name: cloud, kind: aws, regions: [eu-west-1, eu-west-1], services: [], external_id: e}
"""
    )
    assert found == [
        "sources[0].kv: must be a list, got a number",
        "sources[0].pki[0]: must be a mapping, got a number",
        "sources[0].pki[1].mount: is required",
        "sources[0].pki[1].include_revoked: must be true or false, got a string",
        "sources[1].auth: must be a mapping, got a number",
        "sources[2].paths[0]: '**' must be a whole path segment, not part of 'a**['; "
        "unclosed '[' in 'a**['",
        "sources[3].services: must name at least one service",
        "sources[3].external_id: only applies with assume_role_arn",
        "sources[3].regions: lists a region twice",
    ]


def test_a_vault_source_says_what_its_auth_method_needs() -> None:
    found = problems(
        """
sources:
  - {name: a, kind: vault, address: vault.test, kv: [{mount: s}], auth: {method: token}}
  - {name: b, kind: vault, address: https://v.test, pki: [{mount: p}], auth: {method: approle}}
  - {name: c, kind: vault, address: https://v.test, kv: [], auth: {method: kubernetes}}
  - {name: d, kind: vault, address: https://v.test, kv: [{mount: s}]}
"""
    )
    assert found == [
        "sources[0].address: must start with http:// or https://",
        "sources[0].auth: token auth needs token_file or token_env",
        "sources[1].auth: approle auth needs role_id_file or role_id_env (and secret_id_*)",
        "sources[2].auth: kubernetes auth needs a role",
        "sources[2]: a vault source needs at least one kv or pki entry",
        "sources[3].auth.method: is required",
    ]
