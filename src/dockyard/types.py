"""Identifier types that must not be mixed up, and closed choices."""

from __future__ import annotations

from typing import Literal, NewType

AppId = NewType("AppId", str)
AppName = NewType("AppName", str)
AccountId = NewType("AccountId", str)
ReleaseVersion = NewType("ReleaseVersion", int)
DynoName = NewType("DynoName", str)
ProcessType = NewType("ProcessType", str)
SlugDigest = NewType("SlugDigest", str)
"""Hex SHA-256 of a slug image."""

BuildStatus = Literal["pending", "succeeded", "failed"]
ReleaseStatus = Literal["pending", "succeeded", "failed"]
DynoState = Literal["starting", "up", "crashed", "down", "idle"]
DomainKind = Literal["heroku", "custom"]
