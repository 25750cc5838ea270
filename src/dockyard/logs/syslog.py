"""Logplex's wire formats: RFC 5424 messages with RFC 6587 octet counting, and ``application/logplex-1``.

A syslog drain receives ``<len> <PRI>1 <time> <token> <source> <dyno> - - <message>`` (the drain token
as HOSTNAME, the source ``app``/``heroku`` as APP-NAME, the dyno as PROCID, no MSGID nor
STRUCTURED-DATA). An HTTPS drain receives the same framing in a POST body, with Heroku's shape for
it: ``host`` as HOSTNAME and no STRUCTURED-DATA field (``<PRI>1 <time> host <source> <dyno> - <msg>``).
Lines are formatted from their bytes, without decoding them.
"""

from __future__ import annotations

from collections.abc import Iterable

from dockyard.logs.line import split_raw

PRI_APP = 190  # local7.info
PRI_ROUTER = 158  # local3.info
PRI_LOGPLEX = 172  # local5.warning
PRI_HEROKU = 45  # syslog.notice


def priority(source: bytes, dyno: bytes) -> int:
    if source == b"app":
        return PRI_APP
    if dyno == b"router":
        return PRI_ROUTER
    if dyno == b"logplex":
        return PRI_LOGPLEX
    return PRI_HEROKU


def syslog_message(raw: bytes, hostname: bytes, *, structured_data: bool = True) -> bytes:
    """The RFC 5424 message of one formatted log line."""
    parts = split_raw(raw)
    if parts is None:  # not in the log format: pass it on whole as the app's text
        stamp, source, dyno, message = b"-", b"app", b"-", raw
    else:
        stamp, source, dyno, message = parts
    pri = priority(source, dyno)
    if structured_data:
        return b"<%d>1 %s %s %s %s - - %s" % (pri, stamp, hostname, source, dyno or b"-", message)
    return b"<%d>1 %s %s %s %s - %s" % (pri, stamp, hostname, source, dyno or b"-", message)


def octet_frames(lines: Iterable[bytes], hostname: bytes, *, structured_data: bool = True) -> bytes:
    """RFC 6587 octet-counted frames (``<length> <message>``) of ``lines``, concatenated."""
    out = []
    for raw in lines:
        message = syslog_message(raw, hostname, structured_data=structured_data)
        out.append(b"%d %s" % (len(message), message))
    return b"".join(out)


def parse_octet_frames(data: bytes) -> tuple[list[bytes], bytes]:
    """Split octet-counted frames: the complete messages and what is left over (a receiver's
    side; used by tests and the benchmark)."""
    messages = []
    position = 0
    while True:
        space = data.find(b" ", position, position + 12)
        if space < 0:
            break
        length = int(data[position:space])
        end = space + 1 + length
        if end > len(data):
            break
        messages.append(data[space + 1 : end])
        position = end
    return messages, data[position:]
