"""Drains against real receivers: syslog over TCP and TLS (octet counting), HTTPS logplex POSTs with
retries under one frame id, bounded buffers that drop the oldest lines and report L10, L14 for a
certificate that fails validation, and the address guard."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import pytest

from dockyard.errors import InvalidError
from dockyard.logs.drains import DrainConfig, DrainOptions, HttpDrain, SyslogDrain, make_drain
from dockyard.logs.drainurl import AddressGuard, parse_drain_url, refusal
from dockyard.logs.syslog import octet_frames, parse_octet_frames, syslog_message

from .support import HttpReceiver, SyslogReceiver, make_ca

pytestmark = pytest.mark.anyio

TOKEN = "d.0b4f8a41-0000-4000-8000-000000000001"
LINES = [
    b"2026-03-01T12:00:00.250000+00:00 app[web.1]: hello world",
    b"2026-03-01T12:00:00.250001+00:00 heroku[router]: at=info status=200",
    b"2026-03-01T12:00:00.250002+00:00 heroku[web.1]: State changed from starting to up",
]


class Reports:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, app_id: str, message: str) -> None:
        self.lines.append((app_id, message))

    def text(self) -> str:
        return "\n".join(message for _, message in self.lines)


def options(reports: Reports, **kwargs: object) -> DrainOptions:
    return DrainOptions(
        guard=AddressGuard(allow_private=True),
        report=reports,
        retry_delays=(0.05,),
        **kwargs,  # type: ignore[arg-type]
    )


def config(url: str) -> DrainConfig:
    return DrainConfig(id="drain-1", app_id="app-1", token=TOKEN, url=url)


def test_syslog_messages_are_rfc5424_with_the_token_as_hostname() -> None:
    message = syslog_message(LINES[0], TOKEN.encode())
    assert message == (
        b"<190>1 2026-03-01T12:00:00.250000+00:00 " + TOKEN.encode() + b" app web.1 - - hello world"
    )
    assert syslog_message(LINES[1], b"t").startswith(b"<158>1 ")
    assert syslog_message(LINES[2], b"t").startswith(b"<45>1 ")


def test_frames_are_octet_counted_and_split_back() -> None:
    data = octet_frames(LINES, b"host", structured_data=False)
    messages, rest = parse_octet_frames(data)
    assert rest == b""
    assert messages[0] == b"<190>1 2026-03-01T12:00:00.250000+00:00 host app web.1 - hello world"
    assert data.startswith(b"%d <190>1 " % len(messages[0]))
    assert len(messages) == 3


def test_drain_urls_are_checked() -> None:
    target = parse_drain_url("https://user:s3cret@logs.example.com/drain?x=1")
    assert (target.host, target.port, target.path, target.username) == (
        "logs.example.com",
        443,
        "/drain?x=1",
        "user",
    )
    assert target.redacted == "https://user:***@logs.example.com/drain?x=1"
    assert parse_drain_url("syslog+tls://logs.example.com:6514").tls
    for bad in ("ftp://x.example.com", "syslog://x.example.com", "https://", "not a url", ""):
        with pytest.raises(InvalidError):
            parse_drain_url(bad)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.9", "private"),
        ("169.254.169.254", "link-local"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address to refuse, not to bind
        ("224.0.0.1", "multicast"),
    ],
)
def test_the_guard_refuses_internal_addresses(address: str, reason: str) -> None:
    found = refusal(ipaddress.ip_address(address))
    assert found is not None
    assert reason in found
    with pytest.raises(InvalidError, match="public addresses only"):
        AddressGuard(allow_private=False).check([address], "logs.example.com")


def test_the_guard_refuses_the_platforms_own_addresses_and_allows_public_ones() -> None:
    own = [ipaddress.ip_network("203.0.113.7/32")]
    guard = AddressGuard(allow_private=False, own=own)
    with pytest.raises(InvalidError, match="platform's own"):
        guard.check(["203.0.113.7"], "me.example.com")
    assert guard.check(["203.0.113.7", "8.8.8.8"], "x.example.com") == ["8.8.8.8"]
    assert AddressGuard(allow_private=True).check(["127.0.0.1"], "localhost") == ["127.0.0.1"]


async def test_a_syslog_drain_delivers_every_line_in_order() -> None:
    receiver = await SyslogReceiver().start()
    drain = make_drain(config(f"syslog://127.0.0.1:{receiver.port}"), options(Reports()))
    assert isinstance(drain, SyslogDrain)
    drain.start()
    try:
        async with asyncio.timeout(10):
            while not drain.stats.connected:
                await asyncio.sleep(0.01)
        lines = [b"2026-03-01T12:00:00.000000+00:00 app[web.1]: n=%d" % n for n in range(3000)]
        for start in range(0, 3000, 100):
            drain.feed(lines[start : start + 100])
            await asyncio.sleep(0)
        got = await receiver.wait_for(3000)
        assert [m.rsplit(b" ", 1)[1] for m in got] == [b"n=%d" % n for n in range(3000)]
        assert drain.stats.dropped == 0
    finally:
        await drain.close()
        await receiver.close()


async def test_a_tls_syslog_drain_checks_the_certificate(tmp_path: Path) -> None:
    ca_file, server_tls = make_ca(tmp_path)
    receiver = await SyslogReceiver().start(server_tls)
    reports = Reports()
    drain = make_drain(
        config(f"syslog+tls://localhost:{receiver.port}"), options(reports, ca_file=str(ca_file))
    )
    drain.start()
    try:
        drain.feed(LINES)
        got = await receiver.wait_for(3)
        assert got[0].endswith(b"app web.1 - - hello world")
        assert reports.lines == []
    finally:
        await drain.close()
        await receiver.close()


async def test_an_untrusted_certificate_is_l14_and_nothing_is_sent(tmp_path: Path) -> None:
    _, server_tls = make_ca(tmp_path)
    receiver = await SyslogReceiver().start(server_tls)
    reports = Reports()
    drain = make_drain(config(f"syslog+tls://localhost:{receiver.port}"), options(reports))
    drain.start()
    try:
        drain.feed(LINES)
        async with asyncio.timeout(10):
            while not reports.lines:
                await asyncio.sleep(0.02)
        assert reports.lines[0][0] == "app-1"
        assert reports.text().startswith("Error L14 (certificate validation error): syslog+tls://")
        assert receiver.messages == []
        await asyncio.sleep(0.2)  # retried, but reported once
        assert len(reports.lines) == 1
    finally:
        await drain.close()
        await receiver.close()


async def test_a_hanging_drain_keeps_a_bounded_buffer_and_reports_l10() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await asyncio.sleep(3600)

    server = await asyncio.start_server(never_read, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reports = Reports()
    drain = make_drain(config(f"syslog://127.0.0.1:{port}"), options(reports, buffer_lines=1024))
    assert isinstance(drain, SyslogDrain)
    drain.start()
    try:
        async with asyncio.timeout(10):
            while drain.transport is None:
                await asyncio.sleep(0.01)
        line = b"2026-03-01T12:00:00.000000+00:00 app[web.1]: " + b"z" * 500
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(400):
            drain.feed([line] * 100)  # 40,000 lines, about 20 MB: far more than the socket takes
            await asyncio.sleep(0)
        assert loop.time() - started < 5  # feeding never waited for the drain
        assert len(drain.buffer) == 1024
        assert drain.stats.dropped > 0
        assert drain.stats.dropped + drain.stats.sent + len(drain.buffer) == 40_000
        assert "Error L10 (output buffer overflow): " in reports.text()
        assert " messages dropped since 20" in reports.text()
    finally:
        await drain.close()
        server.close()
        for writer in accepted:
            writer.transport.abort()
        await server.wait_closed()


async def test_an_https_drain_posts_logplex_batches() -> None:
    receiver = await HttpReceiver().start()
    drain = make_drain(
        config(f"http://user:pw@127.0.0.1:{receiver.port}/logs?k=1"), options(Reports())
    )
    assert isinstance(drain, HttpDrain)
    drain.start()
    try:
        drain.feed(LINES)
        (post,) = await receiver.wait_for_posts(1)
        assert post.headers["request-line"] == "POST /logs?k=1 HTTP/1.1"
        assert post.headers["content-type"] == "application/logplex-1"
        assert post.headers["logplex-msg-count"] == "3"
        assert post.headers["logplex-drain-token"] == TOKEN
        assert post.headers["user-agent"].startswith("Logplex/")
        assert post.headers["authorization"] == "Basic dXNlcjpwdw=="
        assert len(post.headers["logplex-frame-id"]) == 32
        messages = receiver.messages()
        assert messages[1] == (
            b"<158>1 2026-03-01T12:00:00.250001+00:00 host heroku router - at=info status=200"
        )
    finally:
        await drain.close()
        await receiver.close()


async def test_an_https_drain_retries_a_failed_batch_under_the_same_frame_id(
    tmp_path: Path,
) -> None:
    ca_file, server_tls = make_ca(tmp_path)
    receiver = await HttpReceiver(statuses=[500, 503]).start(server_tls)
    reports = Reports()
    drain = make_drain(
        config(f"https://localhost:{receiver.port}/"), options(reports, ca_file=str(ca_file))
    )
    drain.start()
    try:
        drain.feed(LINES)
        posts = await receiver.wait_for_posts(3)
        assert len({p.headers["logplex-frame-id"] for p in posts}) == 1
        assert len(receiver.messages()) == 3
        async with asyncio.timeout(10):
            while drain.stats.sent < 3:
                await asyncio.sleep(0.01)
        assert reports.lines == []
    finally:
        await drain.close()
        await receiver.close()


async def test_a_drain_to_a_refused_address_never_connects() -> None:
    receiver = await SyslogReceiver().start()
    reports = Reports()
    guarded = DrainOptions(
        guard=AddressGuard(allow_private=False), report=reports, retry_delays=(0.05,)
    )
    drain = make_drain(config(f"syslog://127.0.0.1:{receiver.port}"), guarded)
    drain.start()
    try:
        drain.feed(LINES)
        await asyncio.sleep(0.3)
        assert receiver.messages == []
        assert "public addresses only" in drain.stats.last_error
    finally:
        await drain.close()
        await receiver.close()
