"""Real apps in each built-in language deployed with `git push` to a real Dockyard and served
through the router: Flask (requirements.txt), FastAPI (pyproject.toml + uv.lock), Node/Express
(package-lock.json) and a static site, none with a Procfile (the buildpacks choose the web
process). Each app is pushed over both transports: first over SSH (Flask, Express) or HTTPS
(FastAPI, the static site), with empty caches, then a change over the other one, whose build
reuses the cached dependencies."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Literal

import pytest

from tests.e2e.conftest import Dockyard
from tests.e2e.test_ssh_push import push_over_ssh, register_key

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

APPS = Path(__file__).resolve().parents[1] / "build" / "buildpacks" / "apps"

FLASK_APP = """\
import os

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return f"flask says {os.environ.get('GREETING', 'hello')}"
"""


@pytest.fixture(scope="module")
def api_key(dockyard: Dockyard) -> str:
    created = dockyard.cli("admin:create-user", "langs@example.com")
    key = re.search(r"API key \(shown once\): (\S+)", created.stdout)
    assert key, created.stdout
    dockyard.cli("login", "--email", "langs@example.com", "--api-key", key.group(1))
    return key.group(1)


Transport = Literal["https", "ssh"]


@pytest.fixture(scope="module")
def identity(dockyard: Dockyard, api_key: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SSH key of the logged-in user's."""
    del api_key  # logs the user in
    return register_key(dockyard, tmp_path_factory.mktemp("ssh"))


def _push(dockyard: Dockyard, identity: Path, name: str, repo: Path, over: Transport) -> str:
    """Commit everything in ``repo`` and push it to ``name`` over ``over``; the push output."""
    dockyard.git("add", "-A", cwd=repo)
    dockyard.git("commit", "-q", "-m", f"deploy over {over}", cwd=repo)
    if over == "ssh":
        output = push_over_ssh(dockyard, identity, repo, name)
    else:
        push = dockyard.git("push", "dockyard", "main", cwd=repo)
        output = push.stdout + push.stderr
    assert "Released v" in output, output
    return output


def _deploy(
    dockyard: Dockyard,
    api_key: str,
    identity: Path,
    name: str,
    repo: Path,
    over: Transport,
    config: dict[str, str] | None = None,
) -> str:
    """Create the app (with ``config``) and push ``repo`` to it over ``over``; the push output."""
    response = dockyard.api("POST", "/apps", api_key, json={"name": name})
    assert response.status_code == 201, response.text
    if config:
        response = dockyard.api("PATCH", f"/apps/{name}/config-vars", api_key, json=config)
        assert response.status_code == 200, response.text
    dockyard.git("init", "-q", "-b", "main", cwd=repo)
    dockyard.cli("git:remote", "-a", name, cwd=repo)
    return _push(dockyard, identity, name, repo, over)


def _change(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_a_flask_app_with_requirements_txt(
    dockyard: Dockyard, api_key: str, identity: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "flask"
    repo.mkdir()
    (repo / "requirements.txt").write_text("flask\ngunicorn\n")
    (repo / "app.py").write_text(FLASK_APP)

    output = _deploy(dockyard, api_key, identity, "flask-e2e", repo, "ssh", {"GREETING": "hi"})

    assert "remote: -----> Python app detected" in output
    assert "remote: -----> Installing requirements with pip (requirements.txt)" in output
    assert 'using "gunicorn app:app"' in output
    assert dockyard.wait_for("flask-e2e", "flask says hi").status_code == 200

    _change(repo / "app.py", "flask says", "flask still says")
    output = _push(dockyard, identity, "flask-e2e", repo, "https")

    assert "remote: -----> Dependencies unchanged since the last build (requirements.txt)" in output
    assert dockyard.wait_for("flask-e2e", "flask still says hi").status_code == 200


def test_a_fastapi_app_with_uv_lock(
    dockyard: Dockyard, api_key: str, identity: Path, tmp_path: Path
) -> None:
    repo = shutil.copytree(APPS / "fastapi-uv", tmp_path / "fastapi")

    output = _deploy(dockyard, api_key, identity, "fastapi-e2e", repo, "https")

    assert "remote: -----> Installing dependencies from uv.lock with uv" in output
    assert 'using "uvicorn main:app --host 0.0.0.0 --port $PORT"' in output
    response = dockyard.wait_for("fastapi-e2e", '"framework":"fastapi"')
    assert response.json() == {"framework": "fastapi", "greeting": "hello"}

    _change(repo / "main.py", '"hello"', '"hello over ssh"')
    output = _push(dockyard, identity, "fastapi-e2e", repo, "ssh")

    assert "remote: -----> Dependencies unchanged since the last build (uv.lock)" in output
    response = dockyard.wait_for("fastapi-e2e", "hello over ssh")
    assert response.json() == {"framework": "fastapi", "greeting": "hello over ssh"}


def test_a_node_express_app(
    dockyard: Dockyard, api_key: str, identity: Path, tmp_path: Path
) -> None:
    repo = shutil.copytree(APPS / "express", tmp_path / "express")

    output = _deploy(dockyard, api_key, identity, "express-e2e", repo, "ssh")

    assert "remote: -----> Node.js app detected" in output
    assert "remote:        Installing node modules (package-lock.json)" in output
    response = dockyard.wait_for("express-e2e", "express says hello")
    assert response.text == "express says hello (NODE_ENV=production)\n"

    _change(repo / "index.js", "express says", "express still says")
    _push(dockyard, identity, "express-e2e", repo, "https")

    response = dockyard.wait_for("express-e2e", "express still says hello")
    assert response.text == "express still says hello (NODE_ENV=production)\n"


def test_a_static_site(dockyard: Dockyard, api_key: str, identity: Path, tmp_path: Path) -> None:
    repo = tmp_path / "site"
    (repo / "public").mkdir(parents=True)
    (repo / "public" / "index.html").write_text("<h1>static home</h1>\n")
    (repo / "public" / "about.html").write_text("<h1>about us</h1>\n")
    (repo / "static.json").write_text('{"root": "public", "clean_urls": true}\n')

    output = _deploy(dockyard, api_key, identity, "static-e2e", repo, "https")

    assert "remote: -----> Static site app detected" in output
    assert dockyard.wait_for("static-e2e", "static home").status_code == 200
    about = dockyard.get("static-e2e", "/about")
    assert (about.status_code, about.text) == (200, "<h1>about us</h1>\n")
    assert about.headers["content-type"] == "text/html; charset=utf-8"
    assert dockyard.get("static-e2e", "/static.json").status_code == 404

    _change(repo / "public" / "index.html", "static home", "static home over ssh")
    _push(dockyard, identity, "static-e2e", repo, "ssh")

    assert dockyard.wait_for("static-e2e", "static home over ssh").status_code == 200
