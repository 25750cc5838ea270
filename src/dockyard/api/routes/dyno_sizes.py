"""``/dyno-sizes``: the sizes on offer (readable without authentication, as on Heroku)."""

from __future__ import annotations

from fastapi import APIRouter

from dockyard.api.schemas import JSON, all_dyno_sizes
from dockyard.domain.formation import validate_size

router = APIRouter(tags=["dyno-sizes"])


@router.get("/dyno-sizes")
def list_sizes() -> list[JSON]:
    return all_dyno_sizes()


@router.get("/dyno-sizes/{size}")
def size_info(size: str) -> JSON:
    name = validate_size(size)
    return next(s for s in all_dyno_sizes() if s["name"].lower() == name)
