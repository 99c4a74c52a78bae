"""How to talk to one endpoint, declared: the TLS options of a target, a ``/probe`` module and
``defaults:``, their ``revocation:`` and the readable files they name (pydantic models, see
:mod:`.fields`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    BeforeValidator,
    Field,
    PlainValidator,
    PrivateAttr,
    ValidationInfo,
    field_validator,
)

from ..net import is_hostname
from ..tls.options import MAX_HANDSHAKE_BYTES_RANGE, RevocationOptions, TLSOptions
from .fields import (
    HERE,
    Flag,
    Section,
    duration,
    file_problem,
    number,
    one_of,
    problem,
    text,
    texts,
)
from .model import MIN_TIMEOUT, STARTTLS_PROTOCOLS


def readable(pem_certs: bool = False) -> PlainValidator:
    """A path to a file that can be read (and, for ``pem_certs``, holds a PEM certificate)."""

    def check(v: object) -> str | None:
        path = text(v)
        if path is None:
            return None
        why = file_problem(path, pem_certs)
        if why:
            raise problem(why)
        return path

    return PlainValidator(check)


def _host_name(v: object) -> str | None:
    name = text(v)
    if name is not None and not is_hostname(name):
        raise problem(f"{name!r} is not a valid host name")
    return name


def _switch(v: object) -> object:
    # ``revocation: false`` turns both fetches off; the model remembers it was a switch.
    return RevocationModel.switch(v) if isinstance(v, bool) else v


class RevocationModel(Section):
    """``revocation:``: ``true``/``false``, or a mapping of the RevocationOptions fields."""

    ocsp: Flag = None
    crl: Flag = None
    timeout: Annotated[float | None, duration(MIN_TIMEOUT)] = None
    max_crl_bytes: Annotated[float | None, number(1024, 2**30)] = None
    _on: bool | None = PrivateAttr(default=None)

    @classmethod
    def switch(cls, on: bool) -> RevocationModel:
        m = cls()
        m._on = on
        return m

    def build(self, base: RevocationOptions) -> RevocationOptions:
        if self._on is not None:
            return RevocationOptions(ocsp=self._on, crl=self._on, timeout=base.timeout)
        return RevocationOptions(
            ocsp=base.ocsp if self.ocsp is None else self.ocsp,
            crl=base.crl if self.crl is None else self.crl,
            timeout=self.timeout or base.timeout,
            max_crl_bytes=int(self.max_crl_bytes or base.max_crl_bytes),
        )


Revocation = Annotated[RevocationModel | None, BeforeValidator(_switch)]
HandshakeBytes = Annotated[float | None, number(*MAX_HANDSHAKE_BYTES_RANGE)]


class TLSModel(Section):
    """The TLS options (``keys.TLS_KEYS``): a ``/probe`` module, or those of one target."""

    sni: Annotated[str | None, PlainValidator(_host_name)] = None
    starttls: Annotated[
        str | None, one_of(STARTTLS_PROTOCOLS, f"must be one of {', '.join(STARTTLS_PROTOCOLS)}")
    ] = None
    alpn: Annotated[tuple[str, ...] | None, PlainValidator(texts)] = None
    ca_file: Annotated[str | None, readable(pem_certs=True)] = None
    client_cert: Annotated[str | None, readable()] = None
    client_key: Annotated[str | None, readable()] = Field(default=None, validate_default=True)
    timeout: Annotated[float | None, duration(MIN_TIMEOUT)] = None
    max_handshake_bytes: HandshakeBytes = None
    revocation: Revocation = None

    @field_validator("client_key", mode="after")
    @classmethod
    def _pair(cls, key: str | None, info: ValidationInfo) -> str | None:
        # Said only when nothing before it in this mapping is wrong (a client_cert that
        # cannot be read is reason enough): the options are read in declaration order.
        earlier = ("sni", "starttls", "alpn", "ca_file", "client_cert")
        clean = all(k in info.data for k in earlier) and (info.context or {}).get("clean", True)
        if clean and (info.data["client_cert"] is None) != (key is None):
            raise problem("client_cert and client_key must be given together", HERE)
        return key

    def build(self, base: TLSOptions) -> TLSOptions:
        given = self.model_fields_set
        return TLSOptions(
            sni=self.sni,
            starttls=self.starttls,
            alpn=base.alpn if self.alpn is None else self.alpn,
            ca_file=self.ca_file if "ca_file" in given else base.ca_file,
            client_cert=self.client_cert,
            client_key=self.client_key,
            timeout=self.timeout or base.timeout,
            max_handshake_bytes=int(self.max_handshake_bytes or base.max_handshake_bytes),
            revocation=self.revocation.build(base.revocation)
            if self.revocation
            else base.revocation,
        )
