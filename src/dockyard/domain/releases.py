"""Release descriptions in Heroku's words."""

from __future__ import annotations

from dockyard.types import ReleaseVersion


def deploy_description(commit: str | None) -> str:
    return f"Deploy {commit[:8]}" if commit else "Deploy"


def rollback_description(version: ReleaseVersion | int) -> str:
    return f"Rollback to v{version}"


def parse_version(text: str) -> ReleaseVersion:
    """``v12`` or ``12`` → 12."""
    raw = text[1:] if text[:1] in ("v", "V") else text
    if not raw.isdigit() or int(raw) < 1:
        from dockyard.errors import InvalidError

        raise InvalidError(f"Release {text!r} is not a version such as v12", field="release")
    return ReleaseVersion(int(raw))
