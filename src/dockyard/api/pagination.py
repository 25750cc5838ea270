"""Heroku's ``Range`` pagination: ``Range: id ]<last>..; max=10, order=desc`` → 206 and ``Next-Range``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dockyard.errors import InvalidError

DEFAULT_MAX = 200
LIMIT_MAX = 1000
_RANGE = re.compile(
    r"^\s*(?P<field>[a-z_]+)\s*(?P<exclusive>\]?)(?P<start>[^.;]*)\.\.(?P<end>[^;]*?)\s*(?:;\s*(?P<opts>.*))?$"
)


@dataclass(frozen=True)
class RangeSpec:
    field: str
    start: str
    exclusive: bool
    end: str
    max: int
    descending: bool


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_range: str | None


def parse_range(header: str | None, allowed: Sequence[str]) -> RangeSpec:
    default = RangeSpec(allowed[0], "", False, "", DEFAULT_MAX, False)
    if not header:
        return default
    match = _RANGE.match(header)
    if match is None:
        raise InvalidError(
            f'Range header {header!r} is not of the form "id ..; max=10"', field="Range"
        )
    field = match["field"]
    if field not in allowed:
        raise InvalidError(
            f"Range field {field!r} is not supported here; use one of {', '.join(allowed)}",
            field="Range",
        )
    size, descending = DEFAULT_MAX, False
    for option in (match["opts"] or "").replace(";", ",").split(","):
        key, _, value = option.strip().partition("=")
        if not key:
            continue
        if key == "max":
            if not value.isdigit() or not 1 <= int(value) <= LIMIT_MAX:
                raise InvalidError(f"Range max must be 1 to {LIMIT_MAX}", field="Range")
            size = int(value)
        elif key == "order":
            if value not in ("asc", "desc"):
                raise InvalidError("Range order must be asc or desc", field="Range")
            descending = value == "desc"
    return RangeSpec(
        field,
        match["start"].strip(),
        bool(match["exclusive"]),
        match["end"].strip(),
        size,
        descending,
    )


def _key(value: Any) -> tuple[int, Any]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


def _coerce(bound: str, sample: Any) -> Any:
    if isinstance(sample, int) and not isinstance(sample, bool) and bound.lstrip("-").isdigit():
        return int(bound)
    return bound


def paginate(items: Sequence[dict[str, Any]], spec: RangeSpec) -> Page:
    ordered = sorted(items, key=lambda item: _key(item.get(spec.field)), reverse=spec.descending)
    if spec.start and ordered:
        start = _key(_coerce(spec.start, ordered[0].get(spec.field)))

        def after(item: dict[str, Any]) -> bool:
            value = _key(item.get(spec.field))
            if spec.descending:
                return value < start if spec.exclusive else value <= start
            return value > start if spec.exclusive else value >= start

        ordered = [item for item in ordered if after(item)]
    if spec.end and ordered:
        end = _key(_coerce(spec.end, ordered[0].get(spec.field)))
        ordered = [
            item
            for item in ordered
            if (
                _key(item.get(spec.field)) >= end
                if spec.descending
                else _key(item.get(spec.field)) <= end
            )
        ]
    page = ordered[: spec.max]
    if len(ordered) <= spec.max:
        return Page(page, None)
    last = page[-1].get(spec.field)
    order = ", order=desc" if spec.descending else ""
    return Page(page, f"{spec.field} ]{last}..; max={spec.max}{order}")


def list_response(
    range_header: str | None, items: Sequence[dict[str, Any]], fields: Sequence[str]
) -> Any:
    """A JSON list response: 200 when complete, 206 with ``Next-Range`` when truncated."""
    from fastapi.responses import JSONResponse

    page = paginate(items, parse_range(range_header, fields))
    headers = {"Accept-Ranges": ", ".join(fields)}
    if page.next_range is None:
        return JSONResponse(page.items, headers=headers)
    headers["Next-Range"] = page.next_range
    return JSONResponse(page.items, status_code=206, headers=headers)
