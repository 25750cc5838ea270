"""Helpers for the built-in buildpack tests: fixture apps, unpacked (and moved) slugs, and web
processes started the way the process runtime starts dynos."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from dockyard.runtime.process import DEFAULT_PATH, LAUNCHER
from dockyard.slug.image import extract_image
from dockyard.slug.store import SlugStore

APPS = Path(__file__).parent / "apps"


def copy_app(name: str, target: Path) -> Path:
    """A fresh copy of the fixture app ``apps/<name>``."""
    shutil.copytree(APPS / name, target)
    return target


def unpack_moved(slugs: SlugStore, digest: str, where: Path) -> Path:
    """Unpack a slug, then move it elsewhere: paths baked in at build time no longer exist."""
    first = where / "unpacked"
    extract_image(slugs.get(digest), first)
    moved = where / "moved" / "slug"
    moved.parent.mkdir(parents=True)
    first.rename(moved)
    return moved


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def dyno(slug_dir: Path, command: str, **env: str) -> Iterator[str]:
    """Run ``command`` as a web dyno of the process runtime would (``.profile.d`` sourced, cwd and
    HOME the slug) and yield its base URL once it accepts connections."""
    port = free_port()
    log = slug_dir.parent / f"dyno-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", LAUNCHER, "dyno", command],
            cwd=slug_dir,
            env={"PATH": DEFAULT_PATH, "HOME": str(slug_dir), "PORT": str(port), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{command} did not serve:\n{log.read_text(errors='replace')}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - a local test server
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
