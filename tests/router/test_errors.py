"""The router's own answers: small HTML pages with the code, framed for one write."""

from __future__ import annotations

import pytest

from dockyard.router import errors
from dockyard.router.errors import RouterError

ALL = [
    errors.NO_SUCH_APP,
    errors.BAD_REQUEST,
    errors.H10,
    errors.H12,
    errors.H13,
    errors.H14,
    errors.H17,
    errors.H18,
    errors.H19,
    errors.H20,
    errors.H21,
    errors.H24,
    errors.H80,
    errors.H81,
]


@pytest.mark.parametrize("err", ALL, ids=lambda e: e.code or str(e.status))
def test_page_is_small_html_with_the_code(err: RouterError) -> None:
    assert err.body.startswith(b"<!DOCTYPE html>")
    assert len(err.body) < 1024
    if err.code:
        assert f"Error code: {err.code}".encode() in err.body


@pytest.mark.parametrize("err", ALL, ids=lambda e: e.code or str(e.status))
def test_response_is_framed_by_content_length(err: RouterError) -> None:
    data = err.response(keep_alive=True)
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 %d " % err.status)
    assert b"\r\nContent-Length: %d" % len(body) in head
    assert body == err.body
    assert b"Connection:" not in head


def test_connection_header_follows_keep_alive_and_version() -> None:
    assert b"\r\nConnection: close\r\n" in errors.H12.response(keep_alive=False)
    assert b"\r\nConnection: keep-alive\r\n" in errors.H12.response(keep_alive=True, http10=True)


def test_status_codes_match_heroku() -> None:
    assert errors.NO_SUCH_APP.status == 404
    assert errors.BAD_REQUEST.status == 400
    assert errors.H27.status == 499
    assert {e.status for e in ALL if e.code} == {503}
    assert errors.H80.level == errors.H81.level == "info"
    assert errors.H27.level == "warning"
    assert b"499 Client Closed Request" in errors.H27.response(keep_alive=False)
