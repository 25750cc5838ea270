"""App names: Heroku's rule, and generated names like ``sleepy-meadow-4821``."""

from __future__ import annotations

import random
import re

from dockyard.errors import InvalidError
from dockyard.types import AppName

APP_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,28}[a-z0-9]$")

_ADJECTIVES = (
    "aged ancient autumn billowing bitter black blue bold broken calm cold cool crimson curly damp dark "
    "dawn delicate divine dry empty falling floral fragrant frosty gentle green hidden holy icy jolly late "
    "lingering little lively long lucky misty morning muddy nameless noisy old patient plain polished "
    "proud purple quiet rapid red restless rough round royal shiny shrill shy silent small snowy solitary "
    "sparkling spring still summer sweet thrumming tight tiny twilight wandering weathered white wild "
    "winter wispy withered young sleepy"
).split()
_NOUNS = (
    "art band bar base bird block boat bonus bread breeze brook bush butterfly cake cell cherry cloud "
    "credit darkness dawn dew disk dream dust feather field fire firefly flower fog forest frog frost glade "
    "glitter grass hall hat haze heart hill king lab lake leaf limit math meadow mode moon morning mountain "
    "mouse mud night paper pine poetry pond queen rain recipe resonance rice river salad scene sea shadow "
    "shape silence sky smoke snow snowflake sound star sun sunset surf term thunder tooth tree truth union "
    "unit violet voice water waterfall wave wildflower wind wood"
).split()


def validate_app_name(name: str) -> AppName:
    """Return the name if it follows Heroku's rule, else raise ``InvalidError`` explaining the rule."""
    if not APP_NAME_PATTERN.fullmatch(name):
        raise InvalidError(
            f"Name {name!r} is invalid: app names are 3 to 30 characters of lowercase letters, digits and "
            "dashes, start with a letter and do not end with a dash (e.g. \"my-app-42\")",
            field="name",
        )
    return AppName(name)


def generate_app_name(rng: random.Random | None = None) -> AppName:
    """A readable random name such as ``sleepy-meadow-4821``; callers retry when it is taken."""
    rng = rng or random.SystemRandom()
    name = f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}-{rng.randrange(1000, 10000)}"
    return validate_app_name(name)
