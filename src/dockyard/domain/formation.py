"""Formation: how many dynos of which size run each process type; the dyno sizes on offer."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard.errors import InvalidError
from dockyard.types import ProcessType

FORMATION_TYPE_PATTERN = re.compile(r"^[-\w]{1,128}$")
MAX_DYNOS_PER_APP = 100
DEFAULT_SIZE = "standard-1x"


@dataclass(frozen=True)
class DynoSize:
    name: str
    memory_mb: int
    pids: int
    compute: int
    """Heroku's relative CPU unit; the runtime turns it into a CPU share."""
    dedicated: bool = False


DYNO_SIZES: dict[str, DynoSize] = {
    size.name: size
    for size in (
        DynoSize("eco", 512, 256, 1),
        DynoSize("basic", 512, 256, 1),
        DynoSize("standard-1x", 512, 256, 1),
        DynoSize("standard-2x", 1024, 512, 2),
        DynoSize("performance-m", 2560, 16384, 12, dedicated=True),
        DynoSize("performance-l", 14336, 32768, 50, dedicated=True),
    )
}


def validate_size(size: str) -> str:
    """Sizes are matched case-insensitively (Heroku accepts ``Standard-2X``) and returned lowercase."""
    name = size.lower()
    if name not in DYNO_SIZES:
        raise InvalidError(
            f"Dyno size {size!r} does not exist — choose one of {', '.join(DYNO_SIZES)}",
            field="size",
        )
    return name


def validate_process_type(ptype: str) -> ProcessType:
    if not FORMATION_TYPE_PATTERN.fullmatch(ptype):
        raise InvalidError(
            f"Process type {ptype!r} is invalid — use letters, digits, dashes and underscores",
            field="type",
        )
    return ProcessType(ptype)


def validate_quantity(quantity: object) -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidError(f"Quantity {quantity!r} must be a whole number", field="quantity")
    if not 0 <= quantity <= MAX_DYNOS_PER_APP:
        raise InvalidError(
            f"Quantity {quantity} is out of range: use 0 to {MAX_DYNOS_PER_APP}", field="quantity"
        )
    return quantity


def check_total(quantities: dict[str, int]) -> None:
    total = sum(quantities.values())
    if total > MAX_DYNOS_PER_APP:
        raise InvalidError(
            f"This formation would run {total} dynos; an app can run at most {MAX_DYNOS_PER_APP}",
            field="quantity",
        )


def initial_quantity(ptype: str) -> int:
    """On the first release that defines a type, ``web`` starts with one dyno and other types with none,
    as on Heroku."""
    return 1 if ptype == "web" else 0
