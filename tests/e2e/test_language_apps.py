"""Real apps in each built-in language deployed with `git push` to a real Dockyard and served
through the router: Flask (requirements.txt), FastAPI (pyproject.toml + uv.lock), Node/Express
(package-lock.json) and a static site, none with a Procfile (the buildpacks choose the web
process)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import Dockyard

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


def _deploy(
    dockyard: Dockyard, api_key: str, name: str, repo: Path, config: dict[str, str] | None = None
) -> str:
    """Create the app (with ``config``), commit ``repo`` and push it; the push output."""
    response = dockyard.api("POST", "/apps", api_key, json={"name": name})
    assert response.status_code == 201, response.text
    if config:
        response = dockyard.api("PATCH", f"/apps/{name}/config-vars", api_key, json=config)
        assert response.status_code == 200, response.text
    dockyard.git("init", "-q", "-b", "main", cwd=repo)
    dockyard.git("add", "-A", cwd=repo)
    dockyard.git("commit", "-q", "-m", "deploy", cwd=repo)
    dockyard.cli("git:remote", "-a", name, cwd=repo)
    push = dockyard.git("push", "dockyard", "main", cwd=repo)
    return push.stdout + push.stderr


def test_a_flask_app_with_requirements_txt(
    dockyard: Dockyard, api_key: str, tmp_path: Path
) -> None:
    repo = tmp_path / "flask"
    repo.mkdir()
    (repo / "requirements.txt").write_text("flask\ngunicorn\n")
    (repo / "app.py").write_text(FLASK_APP)

    output = _deploy(dockyard, api_key, "flask-e2e", repo, config={"GREETING": "hi"})

    assert "remote: -----> Python app detected" in output
    assert "remote: -----> Installing requirements with pip (requirements.txt)" in output
    assert 'using "gunicorn app:app"' in output
    assert dockyard.wait_for("flask-e2e", "flask says hi").status_code == 200


def test_a_fastapi_app_with_uv_lock(dockyard: Dockyard, api_key: str, tmp_path: Path) -> None:
    repo = shutil.copytree(APPS / "fastapi-uv", tmp_path / "fastapi")

    output = _deploy(dockyard, api_key, "fastapi-e2e", repo)

    assert "remote: -----> Installing dependencies from uv.lock with uv" in output
    assert 'using "uvicorn main:app --host 0.0.0.0 --port $PORT"' in output
    response = dockyard.wait_for("fastapi-e2e", '"framework":"fastapi"')
    assert response.json() == {"framework": "fastapi", "greeting": "hello"}


def test_a_node_express_app(dockyard: Dockyard, api_key: str, tmp_path: Path) -> None:
    repo = shutil.copytree(APPS / "express", tmp_path / "express")

    output = _deploy(dockyard, api_key, "express-e2e", repo)

    assert "remote: -----> Node.js app detected" in output
    assert "remote:        Installing node modules (package-lock.json)" in output
    response = dockyard.wait_for("express-e2e", "express says hello")
    assert response.text == "express says hello (NODE_ENV=production)\n"


def test_a_static_site(dockyard: Dockyard, api_key: str, tmp_path: Path) -> None:
    repo = tmp_path / "site"
    (repo / "public").mkdir(parents=True)
    (repo / "public" / "index.html").write_text("<h1>static home</h1>\n")
    (repo / "public" / "about.html").write_text("<h1>about us</h1>\n")
    (repo / "static.json").write_text('{"root": "public", "clean_urls": true}\n')

    output = _deploy(dockyard, api_key, "static-e2e", repo)

    assert "remote: -----> Static site app detected" in output
    assert dockyard.wait_for("static-e2e", "static home").status_code == 200
    about = dockyard.get("static-e2e", "/about")
    assert (about.status_code, about.text) == (200, "<h1>about us</h1>\n")
    assert about.headers["content-type"] == "text/html; charset=utf-8"
    assert dockyard.get("static-e2e", "/static.json").status_code == 404
