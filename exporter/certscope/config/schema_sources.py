"""The ``sources:`` entries (files, Vault, Kubernetes, SSH keys, AWS), declared: one pydantic
model per ``kind`` (see :mod:`.fields`), each converting to its frozen model type.

The entry's ``kind`` picks the model (:data:`SOURCE_MODELS`); a key the kind does not take is
an unknown key with the nearest known one suggested. A check across a source's fields runs
only while the fields it reads are valid (``clean``), so one mistake is not reported twice.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainValidator,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from ..tls.options import DEFAULT_TIMEOUT, STORED_REVOCATION_OFF, RevocationOptions
from .checker import Checker, join, type_name
from .fields import (
    HERE,
    Flag,
    Labels,
    RequiredText,
    Section,
    Text,
    Texts,
    choices,
    duration,
    label_name,
    listed,
    number,
    problem,
    required_text,
    string_list,
    text,
    texts,
    validate,
)
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
from .schema_tls import Revocation, RevocationModel, readable

_AWS_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_AWS_ROLE_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_AUTH_METHODS = ("token", "approle", "kubernetes")


def _clean(info: ValidationInfo, *earlier: str) -> bool:
    """A check across fields speaks only on the first reading, with ``earlier`` all valid."""
    return (info.context or {}).get("clean", True) and all(k in info.data for k in earlier)


def _glob(pattern: str) -> str:
    """A glob that cannot match what it says is a config error, not a silent empty source."""
    why = pattern_problems(pattern)
    if why:
        raise problem("; ".join(why))
    return pattern


def _url(v: object) -> str | None:
    url = text(v)
    if url is not None and not url.startswith(("http://", "https://")):
        raise problem("must start with http:// or https://")
    return url


Globs = Annotated[tuple[Annotated[str, AfterValidator(_glob)], ...], string_list()]
Seconds = Annotated[float | None, duration()]


class SourceModel(Section):
    """What every source has: a name, a schedule, labels and how long its data stays fresh."""

    #: Keys whose absence is a problem: read as null, so their validator says what is missing.
    needs: ClassVar[tuple[str, ...]] = ("name",)

    name: RequiredText = ""
    interval: Annotated[float | None, duration(MIN_INTERVAL)] = None
    labels: Labels = Field(default_factory=dict)
    stale_after: Seconds = None

    def common(self, interval: float, labels: dict[str, str]) -> dict[str, Any]:
        return {
            "name": self.name,
            "interval": self.interval or interval,
            "labels": tuple(sorted({**labels, **self.labels}.items())),
            "stale_after": self.stale_after or None,
        }

    def revocation_options(self, given: RevocationModel | None) -> RevocationOptions:
        """A store's ``revocation``: off unless set; when set, the same shape and defaults as
        a target's (``true``, or a mapping whose unnamed methods are on)."""
        if "revocation" not in self.model_fields_set:
            return STORED_REVOCATION_OFF
        return given.build(RevocationOptions()) if given else RevocationOptions()

    def build(self, interval: float, labels: dict[str, str]) -> Source:
        raise NotImplementedError


# --- files ----------------------------------------------------------------------------------


def _some_paths(paths: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
    if not paths and _clean(info):
        raise problem("must list at least one path or glob")
    return paths


class FilesModel(SourceModel):
    """``kind: files``: certificate and key files on disk, by path or glob."""

    kind: Literal["files"] = "files"
    paths: Annotated[Globs, AfterValidator(_some_paths)] = Field(
        default=None, validate_default=True
    )
    exclude: Globs = ()
    follow_symlinks: Flag = None
    max_files: Annotated[float | None, number(1, 10_000_000)] = None
    timeout: Seconds = None
    password_env: Text = None
    password_file: Annotated[str | None, readable()] = None
    revocation: Revocation = None

    def build(self, interval: float, labels: dict[str, str]) -> Source:
        return FilesSource(
            paths=self.paths,
            exclude=self.exclude,
            follow_symlinks=bool(self.follow_symlinks),
            max_files=int(self.max_files or FilesSource.max_files),
            timeout=FilesSource.timeout if self.timeout is None else self.timeout,
            password_env=self.password_env,
            password_file=self.password_file,
            revocation=self.revocation_options(self.revocation),
            **self.common(interval, labels),
        )


# --- vault ----------------------------------------------------------------------------------


def _method(v: object) -> str:
    method = required_text(v)
    if method not in _AUTH_METHODS:
        raise problem(f"must be one of {', '.join(_AUTH_METHODS)}")
    return method


def _auth(v: object) -> object:
    # ``auth`` left out or empty still needs a method: say so at ``auth.method``.
    if v is None:
        return {"method": None}
    return {"method": None, **v} if isinstance(v, dict) else v


class VaultAuthModel(Section):
    """A vault source's ``auth:``: the method and where its secrets are read from."""

    method: Annotated[str, PlainValidator(_method)] = "token"
    token_env: Text = None
    token_file: Annotated[str | None, readable()] = None
    role_id_env: Text = None
    role_id_file: Annotated[str | None, readable()] = None
    secret_id_env: Text = None
    secret_id_file: Annotated[str | None, readable()] = None
    role: Text = None
    jwt_file: Text = None
    mount: Text = Field(default=None, validate_default=True)

    @field_validator("mount", mode="after")
    @classmethod
    def _method_needs(cls, mount: str | None, info: ValidationInfo) -> str | None:
        # Said only when every other auth key is valid: a token_file that cannot be read is
        # reason enough, and a method that is wrong or missing has been said.
        if _clean(info, *tuple(cls.model_fields)[:-1]):
            why = _missing_secret(info.data)
            if why:
                raise problem(why, HERE)
        return mount

    def build(self) -> VaultAuth:
        return VaultAuth(
            method=self.method,
            token=SecretRef(env=self.token_env, file=self.token_file),
            role_id=SecretRef(env=self.role_id_env, file=self.role_id_file),
            secret_id=SecretRef(env=self.secret_id_env, file=self.secret_id_file),
            role=self.role,
            jwt_file=self.jwt_file or VaultAuth.jwt_file,
            mount=self.mount,
        )


def _missing_secret(data: dict[str, Any]) -> str | None:
    method = data["method"]
    if method == "token" and not (data["token_env"] or data["token_file"]):
        return "token auth needs token_file or token_env"
    if method == "approle" and not (data["role_id_env"] or data["role_id_file"]):
        return "approle auth needs role_id_file or role_id_env (and secret_id_*)"
    if method == "kubernetes" and not data["role"]:
        return "kubernetes auth needs a role"
    return None


class VaultKVModel(Section):
    """A ``kv`` entry: a KV v2 mount, the path under it, the keys that hold certificates."""

    mount: RequiredText
    path: Text = None
    keys: Texts = ()


class VaultPKIModel(Section):
    """A ``pki`` entry: a PKI mount whose issued (and, if asked, revoked) certificates count."""

    mount: RequiredText
    include_revoked: Flag = None
    issuers: Flag = None


def _some_entries(
    pki: tuple[VaultPKIModel, ...], info: ValidationInfo
) -> tuple[VaultPKIModel, ...]:
    if _clean(info, "kv") and not info.data["kv"] and not pki:
        raise problem("a vault source needs at least one kv or pki entry", HERE)
    return pki


def _required_url(v: object) -> str:
    return _url(required_text(v)) or ""


class VaultModel(SourceModel):
    """``kind: vault``: certificates in KV v2 secrets and PKI mounts of Vault or OpenBao."""

    needs = ("name", "address", "auth")

    kind: Literal["vault"] = "vault"
    address: Annotated[str, PlainValidator(_required_url)] = ""
    auth: Annotated[VaultAuthModel | None, BeforeValidator(_auth)] = None
    kv: Annotated[tuple[VaultKVModel, ...], listed("must be a list, got {got}")] = ()
    pki: Annotated[
        tuple[VaultPKIModel, ...],
        listed("must be a list, got {got}"),
        AfterValidator(_some_entries),
    ] = Field(default=None, validate_default=True)
    namespace: Text = None
    ca_file: Annotated[str | None, readable(pem_certs=True)] = None
    timeout: Annotated[float | None, duration(MIN_TIMEOUT)] = None
    revocation: Revocation = None

    def build(self, interval: float, labels: dict[str, str]) -> Source:
        return VaultSource(
            address=self.address.rstrip("/"),
            auth=(self.auth or VaultAuthModel.model_construct()).build(),
            kv=tuple(
                VaultKV(
                    mount=e.mount.strip("/"),
                    path=(e.path or "").lstrip("/"),
                    keys=e.keys or VaultKV.keys,
                )
                for e in self.kv
            ),
            pki=tuple(
                VaultPKI(
                    mount=e.mount.strip("/"),
                    include_revoked=bool(e.include_revoked),
                    issuers=e.issuers is not False,
                )
                for e in self.pki
            ),
            namespace=self.namespace,
            ca_file=self.ca_file,
            timeout=self.timeout or DEFAULT_TIMEOUT,
            revocation=self.revocation_options(self.revocation),
            **self.common(interval, labels),
        )


# --- kubernetes -----------------------------------------------------------------------------


def _label_keys(v: object) -> object:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise problem("must map metric label names to annotation or label keys")
    return v


# A value that is not text is left out, as it always was: the key it would name cannot exist.
LabelKeys = Annotated[
    dict[Annotated[str, PlainValidator(label_name)], Any], BeforeValidator(_label_keys)
]


def _pairs(m: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in m.items() if isinstance(v, str)))


class KubernetesModel(SourceModel):
    """``kind: kubernetes``: TLS secrets (and, if asked, ConfigMaps) read from the API."""

    kind: Literal["kubernetes"] = "kubernetes"
    kubeconfig: Annotated[str | None, readable()] = None
    context: Text = None
    namespaces: Texts = ()
    exclude_namespaces: Texts = ()
    label_selector: Text = None
    secret_types: Texts = ()
    opaque_keys: Texts = ()
    configmaps: Flag = None
    configmap_keys: Texts = ()
    configmap_label_selector: Text = None
    labels_from_annotations: LabelKeys = Field(default_factory=dict)
    labels_from_labels: LabelKeys = Field(default_factory=dict)
    qps: Annotated[float | None, number(0.1, 1000)] = None
    burst: Annotated[float | None, number(1, 10000)] = None

    def build(self, interval: float, labels: dict[str, str]) -> Source:
        return KubernetesSource(
            kubeconfig=self.kubeconfig,
            context=self.context,
            namespaces=self.namespaces,
            exclude_namespaces=self.exclude_namespaces,
            label_selector=self.label_selector or "",
            secret_types=self.secret_types or KubernetesSource.secret_types,
            opaque_keys=self.opaque_keys,
            configmaps=bool(self.configmaps),
            configmap_keys=self.configmap_keys or KubernetesSource.configmap_keys,
            configmap_label_selector=self.configmap_label_selector or "",
            labels_from_annotations=_pairs(self.labels_from_annotations),
            labels_from_labels=_pairs(self.labels_from_labels),
            qps=5.0 if self.qps is None else self.qps,
            burst=int(self.burst or 10),
            **self.common(interval, labels),
        )


# --- ssh_authorized_keys --------------------------------------------------------------------


def _state_file(v: object) -> str | None:
    state = text(v)
    if state is not None and not os.path.isdir(os.path.dirname(os.path.abspath(state))):
        raise problem(f"the directory of {state} does not exist")
    return state


class SSHKeysModel(SourceModel):
    """``kind: ssh_authorized_keys``: authorized_keys files, SSH certificates and CA keys."""

    kind: Literal["ssh_authorized_keys"] = "ssh_authorized_keys"
    paths: Texts = ()
    certificate_paths: Texts = ()
    ca_key_paths: Texts = ()
    exclude: Texts = ()
    people: Annotated[str | None, readable()] = None
    state_file: Annotated[str | None, PlainValidator(_state_file)] = None

    def build(self, interval: float, labels: dict[str, str]) -> Source:
        return SSHKeysSource(
            paths=self.paths,
            certificate_paths=self.certificate_paths,
            ca_key_paths=self.ca_key_paths,
            exclude=self.exclude,
            people=self.people,
            state_file=self.state_file,
            **self.common(interval, labels),
        )


# --- aws ------------------------------------------------------------------------------------


def _regions(v: object) -> tuple[str, ...]:
    if v is None:
        raise problem("is required: the regions to read, e.g. [us-east-1]")
    regions = texts(v)
    if not regions:
        raise problem("must list at least one region")
    return regions


def _region(region: str) -> str:
    if not _AWS_REGION_RE.match(region):
        raise problem(f"{region!r} is not an AWS region name such as us-east-1")
    return region


# A source with an earlier problem may have named its services; say only what is certain.
_EARLIER_THAN_SERVICES = ("name", "interval", "labels", "stale_after", "regions")


def _some_services(
    services: tuple[str, ...] | None, info: ValidationInfo
) -> tuple[str, ...] | None:
    if services is not None and not services and _clean(info, *_EARLIER_THAN_SERVICES):
        raise problem("must name at least one service")
    return services


def _role(v: object) -> str | None:
    role = text(v)
    if role is not None and not _AWS_ROLE_RE.match(role):
        raise problem("must be an IAM role ARN such as arn:aws:iam::123456789012:role/certscope")
    return role


def _external_id(external_id: str | None, info: ValidationInfo) -> str | None:
    # A role that was given but is wrong has its own problem; only a missing one is said here.
    if external_id is not None and _clean(info) and info.data.get("assume_role_arn", "") is None:
        raise problem("only applies with assume_role_arn")
    return external_id


class AwsIntervalsModel(Section):
    """An aws source's ``intervals:``: how often each service is read (default: the source's
    interval; KMS and S3 hourly)."""

    kms: Seconds = None
    acm: Seconds = None
    secretsmanager: Seconds = None
    s3: Seconds = None
    rds: Seconds = None
    ebs: Seconds = None


class AwsModel(SourceModel):
    """``kind: aws``: KMS keys, ACM and Secrets Manager certificates, S3, RDS and EBS
    encryption, read per region."""

    needs = ("name", "regions")

    kind: Literal["aws"] = "aws"
    regions: Annotated[
        tuple[Annotated[str, AfterValidator(_region)], ...],
        BeforeValidator(_regions),
    ] = ()
    services: Annotated[
        tuple[str, ...] | None, choices(AWS_SERVICES), AfterValidator(_some_services)
    ] = None
    endpoint_url: Annotated[str | None, PlainValidator(_url)] = None
    assume_role_arn: Annotated[str | None, PlainValidator(_role)] = None
    external_id: Annotated[Text, AfterValidator(_external_id)] = None
    intervals: AwsIntervalsModel | None = None
    profile: Text = None
    secret_certificates: Flag = None
    concurrency: Annotated[float | None, number(1, 64)] = None
    timeout: Seconds = None
    max_attempts: Annotated[float | None, number(1, 20)] = None

    def build(self, interval: float, labels: dict[str, str]) -> Source:
        common = self.common(interval, labels)
        intervals = dict(AWS_DEFAULT_SERVICE_INTERVALS)
        given = self.intervals or AwsIntervalsModel()
        for service in given.model_fields_set:
            intervals[service] = getattr(given, service)
        services = self.services
        return AwsSource(
            regions=tuple(dict.fromkeys(self.regions)),
            services=tuple(s for s in AWS_SERVICES if s in services) if services else AWS_SERVICES,
            endpoint_url=self.endpoint_url.rstrip("/") if self.endpoint_url else None,
            assume_role_arn=self.assume_role_arn,
            external_id=self.external_id,
            profile=self.profile,
            service_intervals=tuple(sorted(intervals.items())),
            secret_certificates=bool(self.secret_certificates),
            concurrency=int(self.concurrency or 8),
            timeout=DEFAULT_TIMEOUT if self.timeout is None else self.timeout,
            max_attempts=int(self.max_attempts or 5),
            **common,
        )


#: Each ``kind`` and the model its entries are read with.
SOURCE_MODELS: dict[str, type[SourceModel]] = {
    "files": FilesModel,
    "kubernetes": KubernetesModel,
    "vault": VaultModel,
    "ssh_authorized_keys": SSHKeysModel,
    "aws": AwsModel,
}


def build_source(
    c: Checker, raw: object, loc: str, interval: float, labels: dict[str, str]
) -> Source | None:
    """One source; None when it has no usable name (its problems are recorded)."""
    if not isinstance(raw, dict):
        c.add(loc, f"must be a mapping, got {type_name(raw)}")
        return None
    kind = raw.get("kind")
    model = SOURCE_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        c.add(join(loc, "kind"), f"must be one of {', '.join(SOURCE_KINDS)}")
        return None
    m = validate(c, model, {**dict.fromkeys(model.needs), **raw}, loc)
    for key, msg in _across(m, raw):
        c.add(join(loc, key), msg)
    return m.build(interval, labels) if m.name else None


def _across(m: SourceModel, raw: dict[Any, Any]) -> list[tuple[str, str]]:
    """The checks about a key whose problem may be beside another of the same key (a region
    named twice and a region misspelt), or about several keys at once."""
    if isinstance(m, SSHKeysModel) and not (m.paths or m.certificate_paths or m.ca_key_paths):
        return [("paths", "must list at least one path or glob")]
    if isinstance(m, AwsModel):
        try:
            regions = texts(raw.get("regions"))
        except PydanticCustomError:
            return []  # said by the model
        if len(set(regions)) != len(regions):
            return [("regions", "lists a region twice")]
    return []


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
