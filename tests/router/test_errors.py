"""The router's own answers: small HTML pages with the code, framed for one write."""

from __future__ import annotations

import pytest

from dockyard.router import errors
from dockyard.router.errors import RouterError

ALL = [
    errors.NO_SUCH_APP,
    errors.BAD_REQUEST,
    errors.URI_TOO_LONG,
    errors.HEADERS_TOO_LARGE,
    errors.BODY_TOO_LARGE,
    errors.EXPECTATION_FAILED,
    errors.H10,
    errors.H11,
    errors.H12,
    errors.H13,
    errors.H14,
    errors.H17,
    errors.H18,
    errors.H19,
    errors.H20,
    errors.H21,
    errors.H22,
    errors.H24,
    errors.H25,
    errors.H27,
    errors.H28,
    errors.H80,
    errors.H81,
    errors.H99,
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
    assert errors.H27.status == errors.H28.status == 499
    assert errors.H25.status == 502
    assert errors.EXPECTATION_FAILED.status == 417
    request_errors = {e.status for e in ALL if e.code == "H26"}
    assert request_errors == {400, 413, 414, 417, 431}
    others = {e.status for e in ALL if e.code and e.code not in ("H25", "H26", "H27", "H28")}
    assert others == {503}
    assert errors.H80.level == errors.H81.level == "info"
    assert errors.H27.level == "warning"
    assert b"499 Client Closed Request" in errors.H27.response(keep_alive=False)


def test_an_apps_own_page_is_shown_in_a_frame_and_only_for_web_addresses() -> None:
    page = errors.custom_page('https://pages.example.com/oops.html?a=1&b="2"', "Application error")
    assert page is not None
    assert b'<iframe src="https://pages.example.com/oops.html?a=1&amp;b=&quot;2&quot;">' in page
    assert errors.custom_page("javascript:alert(1)", "x") is None
    assert errors.custom_page("", "x") is None
    data = errors.H12.response(keep_alive=True, body=page)
    assert data.endswith(page)
    assert b"Content-Length: %d\r\n" % len(page) in data
