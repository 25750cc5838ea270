"""The router's answers that do not come from a dyno: Heroku's H-codes and the 400/404 pages.

Each answer is a small HTML page with the code in it, and is logged into the app's stream as
``at=error code=H.. desc="..."`` (``at=info`` for H80 and H81, ``at=warning`` for H15, H27 and
H28), as Heroku does. An app may replace the page of its errors and of maintenance mode with its
own (Heroku's ``ERROR_PAGE_URL`` and ``MAINTENANCE_PAGE_URL`` config vars): ``custom_page`` makes
the page that shows it. These are responses, not exceptions: nothing here is raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from http import HTTPStatus
from typing import Literal

LogLevel = Literal["info", "warning", "error"]


@dataclass(frozen=True, slots=True)
class RouterError:
    code: str
    """``H12``; empty for the pages that are not H-codes (unknown app, bad request)."""
    status: int
    desc: str
    """Heroku's description, logged as ``desc="..."``."""
    level: LogLevel
    title: str
    message: str
    body: bytes = b""
    log_prefix: bytes = b""
    """``at=error code=H12 desc="Request timeout"``, ready for the log line."""
    app_page: bool = True
    """The app's own error page (``ERROR_PAGE_URL``) replaces this one."""

    def response(
        self, *, keep_alive: bool, http10: bool = False, body: bytes | None = None
    ) -> bytes:
        """The whole HTTP response, ready for one ``write``; ``body`` replaces the page."""
        page = self.body if body is None else body
        reason = _reason(self.status)
        connection = (b"keep-alive" if http10 else b"") if keep_alive else b"close"
        head = [
            b"HTTP/1.1 %d %b\r\n" % (self.status, reason),
            b"Content-Type: text/html; charset=utf-8\r\n",
            b"Content-Length: %d\r\n" % len(page),
            b"Cache-Control: no-cache, no-store\r\n",
            b"Via: 1.1 dockyard\r\n",
        ]
        if connection:
            head.append(b"Connection: %b\r\n" % connection)
        head.append(b"\r\n")
        return b"".join(head) + page


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:  # 499, nginx's "client closed request", has no standard phrase
        return b"Client Closed Request"


def _page(title: str, message: str, code: str) -> bytes:
    footer = f"<p><small>Error code: {escape(code)}</small></p>" if code else ""
    html = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head>\n"
        f"<body><h1>{escape(title)}</h1>\n<p>{escape(message)}</p>{footer}</body></html>\n"
    )
    return html.encode("utf-8")


def custom_page(url: str, title: str) -> bytes | None:
    """A page that shows the app's own page at ``url`` (http or https only; None otherwise), the
    way Heroku shows ``ERROR_PAGE_URL`` and ``MAINTENANCE_PAGE_URL``: in a frame filling the
    window, so the router never fetches it."""
    if not url.startswith(("https://", "http://")) or len(url) > 2048:
        return None
    html = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>"
        "<style>html,body,iframe{margin:0;padding:0;border:0;width:100%;height:100%}</style>"
        f'</head>\n<body><iframe src="{escape(url, quote=True)}"></iframe></body></html>\n'
    )
    return html.encode("utf-8")


def _error(
    code: str,
    status: int,
    desc: str,
    level: LogLevel,
    title: str,
    message: str,
    *,
    app_page: bool = True,
) -> RouterError:
    prefix = f'at={level} code={code} desc="{desc}"' if code else f"at={level}"
    body = _page(title, message, code)
    return RouterError(code, status, desc, level, title, message, body, prefix.encode(), app_page)


_APP_ERROR = "Application error"
_APP_MESSAGE = (
    "An error occurred in the application and your page could not be served. "
    "If you are the application owner, check your logs for details."
)
_BAD = "Bad request"

NO_SUCH_APP = _error(
    "",
    404,
    "No such app",
    "info",
    "No such app",
    "There is no app at this address. Check the spelling of the address, "
    "or add this domain to the app.",
    app_page=False,
)
BAD_REQUEST = _error(
    "H26",
    400,
    "Request Error",
    "error",
    _BAD,
    "The request could not be understood: it is malformed, or it is ambiguous "
    "(several Host headers, conflicting Content-Length).",
    app_page=False,
)
URI_TOO_LONG = _error(
    "H26",
    414,
    "Request Error",
    "error",
    _BAD,
    "The request line is longer than 8 KB. Shorten the address or send the data in the body.",
    app_page=False,
)
HEADERS_TOO_LARGE = _error(
    "H26",
    431,
    "Request Error",
    "error",
    _BAD,
    "A request header is longer than 8 KB, or the request has more than 1,000 headers.",
    app_page=False,
)
BODY_TOO_LARGE = _error(
    "H26",
    413,
    "Request Error",
    "error",
    _BAD,
    "The request body is larger than this router accepts.",
    app_page=False,
)
EXPECTATION_FAILED = _error(
    "H26",
    417,
    "Request Error",
    "error",
    _BAD,
    "Only the expectation 100-continue is supported.",
    app_page=False,
)
H10 = _error("H10", 503, "App crashed", "error", _APP_ERROR, _APP_MESSAGE)
H11 = _error("H11", 503, "Backlog too deep", "error", _APP_ERROR, _APP_MESSAGE)
H12 = _error("H12", 503, "Request timeout", "error", _APP_ERROR, _APP_MESSAGE)
H13 = _error("H13", 503, "Connection closed without response", "error", _APP_ERROR, _APP_MESSAGE)
H14 = _error("H14", 503, "No web processes running", "error", _APP_ERROR, _APP_MESSAGE)
H15 = _error("H15", 503, "Idle connection", "warning", _APP_ERROR, _APP_MESSAGE)
H17 = _error("H17", 503, "Poorly formatted HTTP response", "error", _APP_ERROR, _APP_MESSAGE)
H18 = _error("H18", 503, "Server Request Interrupted", "error", _APP_ERROR, _APP_MESSAGE)
H19 = _error("H19", 503, "Backend connection timeout", "error", _APP_ERROR, _APP_MESSAGE)
H20 = _error("H20", 503, "App boot timeout", "error", _APP_ERROR, _APP_MESSAGE)
H21 = _error("H21", 503, "Backend connection refused", "error", _APP_ERROR, _APP_MESSAGE)
H22 = _error("H22", 503, "Connection limit reached", "error", _APP_ERROR, _APP_MESSAGE)
H24 = _error("H24", 503, "Forced close", "error", _APP_ERROR, _APP_MESSAGE)
H25 = _error(
    "H25",
    502,
    "HTTP Restriction",
    "error",
    _APP_ERROR,
    "The application's response was blocked: it breaks the router's limits on response headers.",
)
H27 = _error("H27", 499, "Client Request Interrupted", "warning", _APP_ERROR, _APP_MESSAGE)
H28 = _error("H28", 499, "Client Connection Idle", "warning", _APP_ERROR, _APP_MESSAGE)
H80 = _error(
    "H80",
    503,
    "Maintenance mode",
    "info",
    "Offline for maintenance",
    "This app is undergoing maintenance right now. Please check back later.",
)
H81 = _error(
    "H81",
    503,
    "Blank app",
    "info",
    "Nothing deployed yet",
    "This app exists but nothing has been deployed to it yet. Push some code to see it here.",
)
H99 = _error("H99", 503, "Platform error", "error", _APP_ERROR, _APP_MESSAGE)
