"""Real receivers for drain tests: a syslog server (TCP or TLS) that parses octet-counted frames, an
HTTP(S) server that records logplex POSTs, and a throwaway certificate authority."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dockyard.logs.syslog import parse_octet_frames


def make_ca(directory: Path, name: str = "test-ca") -> tuple[Path, ssl.SSLContext]:
    """A CA file and a server context whose certificate (for 127.0.0.1 and localhost) it signed."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_file = directory / f"{name}.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file, key_file = directory / f"{name}-server.pem", directory / f"{name}-server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return ca_file, context


@dataclass
class SyslogReceiver:
    messages: list[bytes] = field(default_factory=list)
    server: asyncio.base_events.Server | None = None
    port: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def start(self, tls: ssl.SSLContext | None = None) -> SyslogReceiver:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0, ssl=tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        rest = b""
        try:
            while chunk := await reader.read(1 << 16):
                found, rest = parse_octet_frames(rest + chunk)
                self.messages.extend(found)
                self.arrived.set()
        except (ConnectionError, ssl.SSLError):
            pass
        writer.close()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[bytes]:
        async with asyncio.timeout(timeout):
            while len(self.messages) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.messages

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in self.writers:
                writer.transport.abort()
            await self.server.wait_closed()
            await asyncio.sleep(0)


@dataclass
class Post:
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    """Answers each POST with the next status of ``statuses`` (then 200)."""

    statuses: list[int] = field(default_factory=list)
    posts: list[Post] = field(default_factory=list)
    server: asyncio.base_events.Server | None = None
    port: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def start(self, tls: ssl.SSLContext | None = None) -> HttpReceiver:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0, ssl=tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            while request := await reader.readline():
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                headers["request-line"] = request.decode().strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.posts.append(Post(headers, body))
                status = self.statuses.pop(0) if self.statuses else 200
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok".encode())
                await writer.drain()
                self.arrived.set()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        writer.close()

    def messages(self) -> list[bytes]:
        """Every message received, each frame counted once (retries repeat a frame's id)."""
        frames: dict[str, bytes] = {}
        for post in self.posts:
            frames[post.headers["logplex-frame-id"]] = post.body
        return [m for body in frames.values() for m in parse_octet_frames(body)[0]]

    async def wait_for_posts(self, count: int, timeout: float = 10.0) -> list[Post]:
        async with asyncio.timeout(timeout):
            while len(self.posts) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.posts

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in self.writers:
                writer.transport.abort()
            await self.server.wait_closed()
            await asyncio.sleep(0)
