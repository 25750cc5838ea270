"""Runtime test fixtures: a real slug with a tiny HTTP app, a ProcessRuntime on a temp data dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.runtime.process import ProcessRuntime
from dockyard.settings import Settings
from dockyard.slug.store import SlugStore
from tests.runtime.slugs import build_slug, clean_up


@pytest.fixture
def slug(tmp_path: Path, settings: Settings) -> str:
    return build_slug(tmp_path, SlugStore(settings.slugs_dir))


@pytest.fixture
def runtime(settings: Settings) -> Iterator[ProcessRuntime]:
    runtime = ProcessRuntime(settings)
    yield runtime
    clean_up(runtime)
