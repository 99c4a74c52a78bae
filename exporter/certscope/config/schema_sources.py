"""The ``sources:`` entries (files, Vault, Kubernetes, SSH keys, AWS) → model types."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from ..tls.options import DEFAULT_TIMEOUT, STORED_REVOCATION_OFF, RevocationOptions
from .checker import Checker, join, type_name
from .keys import AWS_KEYS, FILES_KEYS, K8S_KEYS, SSH_KEYS_KEYS, VAULT_AUTH_KEYS, VAULT_KEYS
from .model import (
    AWS_DEFAULT_SERVICE_INTERVALS,
    AWS_SERVICES,
    MIN_INTERVAL,
    MIN_TIMEOUT,
    SOURCE_KINDS,
    AwsSource,
    FilesSource,
    KubernetesSource,
    SecretRef,
    Source,
    SSHKeysSource,
    VaultAuth,
    VaultKV,
    VaultPKI,
    VaultSource,
)
from .schema_tls import revocation_options

_AWS_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_AWS_ROLE_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")


def _source_revocation(c: Checker, d: Mapping[str, Any], loc: str) -> RevocationOptions:
    """A store's ``revocation``: off unless set; when set, the same shape and defaults as a
    target's (``true``, or a mapping whose unnamed methods are on)."""
    if "revocation" not in d:
        return STORED_REVOCATION_OFF
    return revocation_options(c, d, loc, RevocationOptions())


def build_source(
    c: Checker, raw: object, loc: str, interval: float, labels: dict[str, str]
) -> Source | None:
    if not isinstance(raw, dict):
        c.add(loc, f"must be a mapping, got {type_name(raw)}")
        return None
    kind = raw.get("kind")
    if kind not in SOURCE_KINDS:
        c.add(join(loc, "kind"), f"must be one of {', '.join(SOURCE_KINDS)}")
        return None
    keys = {
        "files": FILES_KEYS,
        "vault": VAULT_KEYS,
        "kubernetes": K8S_KEYS,
        "ssh_authorized_keys": SSH_KEYS_KEYS,
        "aws": AWS_KEYS,
    }[kind]
    d = c.mapping(raw, loc, keys)
    name = c.string(d, "name", loc, required=True)
    common: dict[str, Any] = {
        "name": name or "",
        "interval": c.duration(d, "interval", loc, interval, MIN_INTERVAL),
        "labels": tuple(
            sorted({**labels, **c.labels(d.get("labels"), join(loc, "labels"))}.items())
        ),
        "stale_after": c.duration(d, "stale_after", loc, 0) or None,
    }
    src: Source
    if kind == "files":
        paths = c.strings(d, "paths", loc)
        if not paths:
            c.add(join(loc, "paths"), "must list at least one path or glob")
        _check_patterns(c, d, loc)
        src = FilesSource(
            paths=paths,
            exclude=c.strings(d, "exclude", loc),
            follow_symlinks=c.boolean(d, "follow_symlinks", loc, False),
            max_files=int(c.number(d, "max_files", loc, FilesSource.max_files, 1, 10_000_000)),
            timeout=c.duration(d, "timeout", loc, FilesSource.timeout),
            password_env=c.string(d, "password_env", loc),
            password_file=c.readable_file(
                c.string(d, "password_file", loc), join(loc, "password_file")
            ),
            revocation=_source_revocation(c, d, loc),
            **common,
        )
    elif kind == "vault":
        src = _vault_source(c, d, loc, common)
    elif kind == "ssh_authorized_keys":
        src = _ssh_keys_source(c, d, loc, common)
    elif kind == "aws":
        src = _aws_source(c, d, loc, common)
    else:
        src = _kubernetes_source(c, d, loc, common)
    return src if name else None


def _check_patterns(c: Checker, d: Mapping[str, Any], loc: str) -> None:
    """A glob that cannot match what it says is a config error, not a silent empty source."""
    for key in ("paths", "exclude"):
        value = d.get(key)
        for i, pattern in enumerate(value if isinstance(value, list) else []):
            if isinstance(pattern, str):
                for problem in pattern_problems(pattern):
                    c.add(f"{join(loc, key)}[{i}]", problem)


def _secret_ref(c: Checker, d: Mapping[str, Any], loc: str, what: str) -> SecretRef:
    env = c.string(d, f"{what}_env", loc)
    path = c.string(d, f"{what}_file", loc)
    if path is not None:
        c.readable_file(path, join(loc, f"{what}_file"))
    return SecretRef(env=env, file=path)


def _vault_source(
    c: Checker, d: Mapping[str, Any], loc: str, common: dict[str, Any]
) -> VaultSource:
    address = c.string(d, "address", loc, required=True) or ""
    if address and not address.startswith(("http://", "https://")):
        c.add(join(loc, "address"), "must start with http:// or https://")
    aloc = join(loc, "auth")
    ad = c.mapping(d.get("auth"), aloc, VAULT_AUTH_KEYS)
    method = c.string(ad, "method", aloc, required=True) or "token"
    if method not in ("token", "approle", "kubernetes"):
        c.add(join(aloc, "method"), "must be one of token, approle, kubernetes")
    auth = VaultAuth(
        method=method,
        token=_secret_ref(c, ad, aloc, "token"),
        role_id=_secret_ref(c, ad, aloc, "role_id"),
        secret_id=_secret_ref(c, ad, aloc, "secret_id"),
        role=c.string(ad, "role", aloc),
        jwt_file=c.string(ad, "jwt_file", aloc) or VaultAuth.jwt_file,
        mount=c.string(ad, "mount", aloc),
    )
    if method == "token" and not (auth.token.env or auth.token.file):
        c.add(aloc, "token auth needs token_file or token_env")
    if method == "approle" and not (auth.role_id.env or auth.role_id.file):
        c.add(aloc, "approle auth needs role_id_file or role_id_env (and secret_id_*)")
    if method == "kubernetes" and not auth.role:
        c.add(aloc, "kubernetes auth needs a role")
    kv: list[VaultKV] = []
    for i, item in enumerate(d.get("kv") or []):
        iloc = f"{loc}.kv[{i}]"
        kd = c.mapping(item, iloc, ("mount", "path", "keys"))
        mount = c.string(kd, "mount", iloc, required=True)
        if mount:
            kv.append(
                VaultKV(
                    mount=mount.strip("/"),
                    path=(c.string(kd, "path", iloc) or "").lstrip("/"),
                    keys=c.strings(kd, "keys", iloc) or VaultKV.keys,
                )
            )
    pki: list[VaultPKI] = []
    for i, item in enumerate(d.get("pki") or []):
        iloc = f"{loc}.pki[{i}]"
        pd = c.mapping(item, iloc, ("mount", "include_revoked", "issuers"))
        mount = c.string(pd, "mount", iloc, required=True)
        if mount:
            pki.append(
                VaultPKI(
                    mount=mount.strip("/"),
                    include_revoked=c.boolean(pd, "include_revoked", iloc, False),
                    issuers=c.boolean(pd, "issuers", iloc, True),
                )
            )
    if not kv and not pki:
        c.add(loc, "a vault source needs at least one kv or pki entry")
    return VaultSource(
        address=address.rstrip("/"),
        auth=auth,
        kv=tuple(kv),
        pki=tuple(pki),
        namespace=c.string(d, "namespace", loc),
        ca_file=c.readable_file(c.string(d, "ca_file", loc), join(loc, "ca_file"), pem_certs=True),
        timeout=c.duration(d, "timeout", loc, DEFAULT_TIMEOUT, MIN_TIMEOUT),
        revocation=_source_revocation(c, d, loc),
        **common,
    )


def _aws_source(c: Checker, d: Mapping[str, Any], loc: str, common: dict[str, Any]) -> AwsSource:
    regions = c.strings(d, "regions", loc)
    if "regions" not in d or d["regions"] is None:
        c.add(join(loc, "regions"), "is required: the regions to read, e.g. [us-east-1]")
    elif not regions and not any(p.location == join(loc, "regions") for p in c.problems):
        c.add(join(loc, "regions"), "must list at least one region")
    for i, region in enumerate(regions):
        if not _AWS_REGION_RE.match(region):
            c.add(f"{loc}.regions[{i}]", f"{region!r} is not an AWS region name such as us-east-1")
    if len(set(regions)) != len(regions):
        c.add(join(loc, "regions"), "lists a region twice")
    services = c.choices(d, "services", loc, AWS_SERVICES)
    if services is not None and not services and not c.problems_at(loc):
        c.add(join(loc, "services"), "must name at least one service")
    endpoint = c.string(d, "endpoint_url", loc)
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        c.add(join(loc, "endpoint_url"), "must start with http:// or https://")
    role = c.string(d, "assume_role_arn", loc)
    if role is not None and not _AWS_ROLE_RE.match(role):
        c.add(
            join(loc, "assume_role_arn"),
            "must be an IAM role ARN such as arn:aws:iam::123456789012:role/certscope",
        )
    external_id = c.string(d, "external_id", loc)
    if external_id is not None and role is None:
        c.add(join(loc, "external_id"), "only applies with assume_role_arn")
    intervals = dict(AWS_DEFAULT_SERVICE_INTERVALS)
    iloc = join(loc, "intervals")
    for service, value in c.mapping(d.get("intervals"), iloc, AWS_SERVICES).items():
        intervals[service] = c.duration({service: value}, service, iloc, common["interval"])
    return AwsSource(
        regions=tuple(dict.fromkeys(regions)),
        services=tuple(s for s in AWS_SERVICES if s in services) if services else AWS_SERVICES,
        endpoint_url=endpoint.rstrip("/") if endpoint else None,
        assume_role_arn=role,
        external_id=external_id,
        profile=c.string(d, "profile", loc),
        service_intervals=tuple(sorted(intervals.items())),
        secret_certificates=c.boolean(d, "secret_certificates", loc, False),
        concurrency=int(c.number(d, "concurrency", loc, 8, 1, 64)),
        timeout=c.duration(d, "timeout", loc, DEFAULT_TIMEOUT),
        max_attempts=int(c.number(d, "max_attempts", loc, 5, 1, 20)),
        **common,
    )


def _label_map(c: Checker, value: object, loc: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        c.add(loc, "must map metric label names to annotation or label keys")
        return ()
    names = c.labels({k: "x" for k in value}, loc)
    return tuple(sorted((k, str(v)) for k, v in value.items() if k in names and isinstance(v, str)))


def _kubernetes_source(
    c: Checker, d: Mapping[str, Any], loc: str, common: dict[str, Any]
) -> KubernetesSource:
    kubeconfig = c.readable_file(c.string(d, "kubeconfig", loc), join(loc, "kubeconfig"))
    return KubernetesSource(
        kubeconfig=kubeconfig,
        context=c.string(d, "context", loc),
        namespaces=c.strings(d, "namespaces", loc),
        exclude_namespaces=c.strings(d, "exclude_namespaces", loc),
        label_selector=c.string(d, "label_selector", loc) or "",
        secret_types=c.strings(d, "secret_types", loc) or KubernetesSource.secret_types,
        opaque_keys=c.strings(d, "opaque_keys", loc),
        configmaps=c.boolean(d, "configmaps", loc, False),
        configmap_keys=c.strings(d, "configmap_keys", loc) or KubernetesSource.configmap_keys,
        configmap_label_selector=c.string(d, "configmap_label_selector", loc) or "",
        labels_from_annotations=_label_map(
            c, d.get("labels_from_annotations"), join(loc, "labels_from_annotations")
        ),
        labels_from_labels=_label_map(
            c, d.get("labels_from_labels"), join(loc, "labels_from_labels")
        ),
        qps=c.number(d, "qps", loc, 5.0, 0.1, 1000),
        burst=int(c.number(d, "burst", loc, 10, 1, 10000)),
        **common,
    )


def _ssh_keys_source(
    c: Checker, d: Mapping[str, Any], loc: str, common: dict[str, Any]
) -> SSHKeysSource:
    paths = c.strings(d, "paths", loc)
    certs = c.strings(d, "certificate_paths", loc)
    cas = c.strings(d, "ca_key_paths", loc)
    if not (paths or certs or cas):
        c.add(join(loc, "paths"), "must list at least one path or glob")
    people = c.string(d, "people", loc)
    if people is not None:
        c.readable_file(people, join(loc, "people"))
    state = c.string(d, "state_file", loc)
    if state is not None and not os.path.isdir(os.path.dirname(os.path.abspath(state))):
        c.add(join(loc, "state_file"), f"the directory of {state} does not exist")
    return SSHKeysSource(
        paths=paths,
        certificate_paths=certs,
        ca_key_paths=cas,
        exclude=c.strings(d, "exclude", loc),
        people=people,
        state_file=state,
        **common,
    )


def pattern_problems(pattern: str) -> list[str]:
    """Why ``pattern`` is not a usable path or glob (empty: it is). Checked by ``check-config``,
    so a typo is a config error, not a source that silently finds nothing."""
    problems: list[str] = []
    if "\x00" in pattern:
        return ["contains a NUL character"]
    for segment in pattern.split(os.sep):
        if "**" in segment and segment != "**":
            problems.append(f"'**' must be a whole path segment, not part of {segment!r}")
        if _unclosed_bracket(segment):
            problems.append(f"unclosed '[' in {segment!r}")
    return problems


def _unclosed_bracket(segment: str) -> bool:
    i = 0
    while i < len(segment):
        if segment[i] == "[":
            # fnmatch: ']' right after '[' or '[!' is a literal member of the class.
            j = i + 1
            if j < len(segment) and segment[j] == "!":
                j += 1
            if j < len(segment) and segment[j] == "]":
                j += 1
            close = segment.find("]", j)
            if close == -1:
                return True
            i = close
        i += 1
    return False
