"""A real slug for runtime and agent tests: a tiny HTTP app that answers with its environment."""

from __future__ import annotations

from pathlib import Path

from dockyard._util import proc
from dockyard.runtime.process import ProcessRuntime
from dockyard.slug.image import make_image
from dockyard.slug.store import SlugStore

APP = """\
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

NAMES = ("PORT", "DYNO", "HOME", "GREETING", "FROM_PROFILE_D", "PATH")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        seen = {"env": {n: os.environ.get(n) for n in NAMES}, "cwd": os.getcwd()}
        body = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


print("listening on", os.environ["PORT"], flush=True)
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def build_slug(tmp_path: Path, store: SlugStore) -> str:
    """A slug with ``app.py`` (an HTTP server on $PORT answering with its environment) and a
    ``.profile.d`` script exporting FROM_PROFILE_D."""
    source = tmp_path / "slug-source"
    (source / ".profile.d").mkdir(parents=True)
    (source / "app.py").write_text(APP)
    (source / ".profile.d" / "test.sh").write_text('export FROM_PROFILE_D="sourced from $HOME"\n')
    image = tmp_path / "slug.squashfs"
    make_image(source, image)
    return store.put(image)[0]


def clean_up(runtime: ProcessRuntime) -> None:
    """Stop every dyno and unmount every slug; fails the test if a slug stayed mounted."""
    for dyno in runtime.list():
        runtime.stop(dyno.spec.id, timeout=1)
    runtime.release_unused(set())
    leaked = runtime.mounter.mounted()
    for digest in leaked:  # never leave a loop mount behind in the temp directory
        proc.run(["umount", "-l", runtime.mounter.path(digest)], check=False)
    assert not leaked, "a slug stayed mounted after every dyno was stopped"
