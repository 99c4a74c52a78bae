"""STARTTLS preambles: the plaintext exchange that turns a protocol connection into TLS.

Each preamble reads at most a few kilobytes with bounded lines, so a hostile or chatty server
cannot make the probe buffer without limit; the caller's deadline bounds the time.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable


class StartTLSRefused(Exception):
    """The server speaks the protocol but will not start TLS."""


class StartTLSError(Exception):
    """The server did not answer the preamble as the protocol says."""


_MAX_LINE = 4096
_MAX_PREAMBLE = 64 * 1024

Preamble = Callable[[asyncio.StreamReader, asyncio.StreamWriter, str], Awaitable[None]]


class _Lines:
    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.total = 0

    async def line(self) -> str:
        try:
            raw = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raise StartTLSError(
                "connection closed during STARTTLS"
                + (f" after {printable(exc.partial)!r}" if exc.partial else "")
            ) from None
        except asyncio.LimitOverrunError:
            raise StartTLSError("line too long in STARTTLS preamble") from None
        self.total += len(raw)
        if self.total > _MAX_PREAMBLE:
            raise StartTLSError("STARTTLS preamble too long")
        return raw.decode("latin-1").rstrip("\r\n")

    async def reply(self) -> tuple[str, list[str]]:
        """An SMTP/FTP style reply: ``250-...`` continuation lines, then ``250 ...``."""
        lines = []
        while True:
            line = await self.line()
            lines.append(line)
            if len(line) < 3 or not line[:3].isdigit():
                raise StartTLSError(f"unexpected reply {printable(line.encode())!r}")
            if len(line) == 3 or line[3] != "-":
                return line[:3], lines


def printable(data: bytes, limit: int = 60) -> str:
    text = "".join(chr(b) if 32 <= b < 127 else "." for b in data[:limit])
    return text + ("…" if len(data) > limit else "")


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


async def smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
    lines = _Lines(reader)
    code, _ = await lines.reply()
    if code != "220":
        raise StartTLSRefused(f"SMTP greeting {code}")
    await _send(writer, b"EHLO certscope.invalid\r\n")
    code, caps = await lines.reply()
    if code != "250":
        raise StartTLSRefused(f"EHLO answered {code}")
    if not any(c[4:].strip().upper().startswith("STARTTLS") for c in caps):
        raise StartTLSRefused("server does not offer STARTTLS")
    await _send(writer, b"STARTTLS\r\n")
    code, msg = await lines.reply()
    if code != "220":
        raise StartTLSRefused(f"STARTTLS answered {code} {printable(msg[-1].encode())}")


async def ftp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
    lines = _Lines(reader)
    code, _ = await lines.reply()
    if code != "220":
        raise StartTLSRefused(f"FTP greeting {code}")
    await _send(writer, b"AUTH TLS\r\n")
    code, _ = await lines.reply()
    if code != "234":
        raise StartTLSRefused(f"AUTH TLS answered {code}")


async def imap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
    lines = _Lines(reader)
    greeting = await lines.line()
    if not greeting.upper().startswith("* OK"):
        raise StartTLSRefused(f"IMAP greeting {printable(greeting.encode())!r}")
    await _send(writer, b"a1 STARTTLS\r\n")
    while True:
        line = await lines.line()
        if line.startswith("a1 "):
            if line[3:].upper().startswith("OK"):
                return
            raise StartTLSRefused(f"STARTTLS answered {printable(line.encode())!r}")


async def pop3(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
    lines = _Lines(reader)
    greeting = await lines.line()
    if not greeting.startswith("+OK"):
        raise StartTLSRefused(f"POP3 greeting {printable(greeting.encode())!r}")
    await _send(writer, b"STLS\r\n")
    answer = await lines.line()
    if not answer.startswith("+OK"):
        raise StartTLSRefused(f"STLS answered {printable(answer.encode())!r}")


async def postgres(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
    # SSLRequest: length 8, code 80877103 (1234 << 16 | 5679); the server answers one byte.
    await _send(writer, struct.pack("!II", 8, 80877103))
    try:
        answer = await reader.readexactly(1)
    except asyncio.IncompleteReadError:
        raise StartTLSError("connection closed after SSLRequest") from None
    if answer == b"N":
        raise StartTLSRefused("PostgreSQL server does not accept SSL")
    if answer != b"S":
        raise StartTLSError(f"unexpected answer to SSLRequest: {answer!r}")


_CLIENT_SSL = 0x00000800
_CLIENT_PROTOCOL_41 = 0x00000200
_CLIENT_SECURE_CONNECTION = 0x00008000


async def mysql(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
    try:
        header = await reader.readexactly(4)
        length = int.from_bytes(header[:3], "little")
        if length > _MAX_PREAMBLE:
            raise StartTLSError("MySQL greeting too long")
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise StartTLSError("connection closed during MySQL greeting") from None
    if not payload or payload[0] == 0xFF:
        raise StartTLSRefused("MySQL server refused the connection")
    if payload[0] != 10:
        raise StartTLSError(f"unsupported MySQL protocol version {payload[0]}")
    end = payload.find(b"\x00", 1)
    # after server version: connection id (4), auth data 1 (8), filler (1), capability low (2)
    cap_at = end + 1 + 4 + 8 + 1
    if end == -1 or len(payload) < cap_at + 2:
        raise StartTLSError("truncated MySQL greeting")
    caps = int.from_bytes(payload[cap_at : cap_at + 2], "little")
    if not caps & _CLIENT_SSL:
        raise StartTLSRefused("MySQL server does not support SSL")
    flags = _CLIENT_SSL | _CLIENT_PROTOCOL_41 | _CLIENT_SECURE_CONNECTION
    body = struct.pack("<IIB", flags, 16 * 1024 * 1024, 33) + b"\x00" * 23
    await _send(writer, len(body).to_bytes(3, "little") + b"\x01" + body)


def _ber_len(n: int) -> bytes:
    return bytes([n]) if n < 128 else bytes([0x81, n])


_LDAP_STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"


async def ldap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
    # LDAPMessage { messageID 1, extendedReq [APPLICATION 23] { requestName [0] OID } }
    name = b"\x80" + _ber_len(len(_LDAP_STARTTLS_OID)) + _LDAP_STARTTLS_OID
    op = b"\x77" + _ber_len(len(name)) + name
    msg = b"\x02\x01\x01" + op
    await _send(writer, b"\x30" + _ber_len(len(msg)) + msg)
    try:
        head = await reader.readexactly(2)
        if head[0] != 0x30:
            raise StartTLSError("LDAP server sent a malformed response")
        length = head[1]
        if length & 0x80:
            nbytes = length & 0x7F
            if not 1 <= nbytes <= 3:
                raise StartTLSError("LDAP response length out of range")
            length = int.from_bytes(await reader.readexactly(nbytes), "big")
        if length > _MAX_PREAMBLE:
            raise StartTLSError("LDAP response too long")
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise StartTLSError("connection closed during LDAP StartTLS") from None
    # messageID INTEGER, then extendedResp [APPLICATION 24] whose first element is resultCode.
    i = 2 + body[1] if len(body) > 2 and body[0] == 0x02 else -1
    if i < 0 or i + 2 > len(body) or body[i] != 0x78:
        raise StartTLSError("LDAP server sent an unexpected response")
    j = i + 2 if body[i + 1] < 128 else i + 2 + (body[i + 1] & 0x7F)
    if j + 3 > len(body) or body[j] != 0x0A:
        raise StartTLSError("LDAP response has no result code")
    result_code = body[j + 2]
    if result_code != 0:
        raise StartTLSRefused(f"LDAP StartTLS result code {result_code}")


PREAMBLES: dict[str, Preamble] = {
    "smtp": smtp,
    "imap": imap,
    "pop3": pop3,
    "ftp": ftp,
    "ldap": ldap,
    "postgres": postgres,
    "mysql": mysql,
}
