"""The distribution: one top-level name, so an app with its own ``pipelines`` signs in.

Each app runs in a subprocess whose working folder holds the app's own
``pipelines.py``, with ``-P`` and an explicit ``PYTHONPATH``: ``python -m
pytest`` puts this repository on ``sys.path``, where its ``pipelines/`` folder
would hide the very clash under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# An app of its own, written the older way SQLAlchemy 2 still takes.
MODELS = """
from flask_login import UserMixin
from sqlalchemy import Column, Integer, String
from sqlalchemy.orm import declarative_base

Base = declarative_base()


class User(UserMixin, Base):
    __tablename__ = "people"
    id = Column(Integer, primary_key=True)
    username = Column(String(80), unique=True)
    email = Column(String(254))
    check_password = staticmethod(lambda password: False)
"""

# The app's own steps module, under the name the library's used to have.
OWN_PIPELINES = 'AMAZON_DISCONNECT_PIPELINE = "mine"\nAMAZON_PIPELINE = "mine too"\n'

MAIN = """
import json
import sys

import pipelines  # the app's own, imported first, as the app's code would

import social_amazon_link
from flask import Flask, jsonify
from flask_login import LoginManager, current_user
from sqlalchemy import create_engine
from sqlalchemy.orm import scoped_session, sessionmaker

from models import Base, User
from social_amazon_link.emulator import LWAEmulator, serve
from social_amazon_link.flask import init_app

CLIENT_ID, SECRET = "amzn1.application-oa2-client.ownpipelines", "own-pipelines-secret"
ADA, GRACE = "amzn1.account.OWNPIPELINESADA", "amzn1.account.OWNPIPELINESGRACE"

server = serve()
lwa = LWAEmulator(server.url, server=server)
lwa.add_client(CLIENT_ID, SECRET)
lwa.add_identity(ADA, "Ada Lovelace", "ada@example.com")
lwa.add_identity(GRACE, "Grace Hopper", "grace@example.com")

app = Flask(__name__)
app.config.update(
    SECRET_KEY="own-pipelines",
    SOCIAL_AUTH_USER_MODEL="models.User",
    SOCIAL_AUTH_LOGIN_REDIRECT_URL="/me",
    SOCIAL_AUTH_AMAZON_KEY=CLIENT_ID,
    SOCIAL_AUTH_AMAZON_SECRET=SECRET,
    SOCIAL_AUTH_AMAZON_AUTHORIZATION_URL=lwa.authorize_url,
    SOCIAL_AUTH_AMAZON_API_URL=lwa.url,
)
engine = create_engine(f"sqlite:///{sys.argv[1]}")
db = scoped_session(sessionmaker(bind=engine))
LoginManager(app).user_loader(lambda user_id: db.get(User, int(user_id)))
init_app(app, db)
Base.metadata.create_all(engine)


@app.get("/me")
def me():
    return jsonify(username=current_user.username if current_user.is_authenticated else None)


# A mobile sign-in through the JSON API, with a token the LWA SDK would hand.
token = lwa.mint_token(CLIENT_ID, ADA)
mobile = app.test_client().post("/api/amazon/token", json={"access_token": token})
# A web sign-in: the person chooses Grace on the sign-in page and allows.
browser = app.test_client()
callback = lwa.consent(browser.get("/login/amazon/").location, GRACE)
web = browser.get(callback, follow_redirects=True)
print(json.dumps({
    "mobile": mobile.get_json(),
    "web": [web.status_code, web.request.path, web.get_json()],
    "own": [pipelines.__file__, pipelines.AMAZON_DISCONNECT_PIPELINE],
    "library": social_amazon_link.__file__,
    "steps": sys.modules["social_amazon_link.pipelines"].__file__,
    "disconnect": app.config["SOCIAL_AUTH_AMAZON_DISCONNECT_PIPELINE"][-1],
    "sys_path": sys.path,
}))
lwa.close()
server.shutdown()
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel ``pip wheel`` builds from a copy of the tracked files."""
    source = tmp_path_factory.mktemp("source")
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, tracked):
        target = source / name.decode()
        if (ROOT / target.relative_to(source)).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((ROOT / name.decode()).read_bytes())
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
        capture_output=True,
        check=True,
        timeout=300,
    )
    (built,) = dist.glob("social_amazon_link-*.whl")
    return built


@pytest.fixture
def own_app(tmp_path: Path) -> Iterator[Path]:
    app = tmp_path / "app"
    app.mkdir()
    (app / "models.py").write_text(MODELS)
    (app / "pipelines.py").write_text(OWN_PIPELINES)
    (app / "main.py").write_text(MAIN)
    yield app


def run_own_app(app: Path, *python_path: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (app, *python_path))
    done = subprocess.run(
        [sys.executable, "-P", "main.py", str(app / "app.sqlite3")],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def assert_signed_in(result: dict[str, object], app: Path) -> None:
    assert str(ROOT) not in result["sys_path"]  # type: ignore[operator]
    assert result["own"] == [str(app / "pipelines.py"), "mine"]
    assert result["disconnect"] == "social_amazon_link.pipelines.record_unlink"
    assert result["mobile"] == {
        "status": "authenticated",
        "new_user": True,
        "user": {"id": 1, "username": "AdaLovelace", "email": "ada@example.com"},
    }
    assert result["web"] == [200, "/me", {"username": "GraceHopper"}]


def test_an_app_with_its_own_pipelines_module_signs_in(own_app):
    # The library as this repository installs it (pip install -e).
    result = run_own_app(own_app)
    assert_signed_in(result, own_app)
    assert result["steps"] == str(ROOT / "pipelines" / "__init__.py")


def test_the_wheel_has_one_top_level_name_and_the_steps_inside_it(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    steps = sorted(path.name for path in (ROOT / "pipelines").glob("*.py"))
    assert (
        sorted(
            name.removeprefix("social_amazon_link/pipelines/")
            for name in names
            if name.startswith("social_amazon_link/pipelines/") and name.endswith(".py")
        )
        == steps
    )
    assert "social_amazon_link/pipelines/py.typed" in names
    assert {name.split("/")[0] for name in names} == {
        "social_amazon_link",
        f"{wheel.name.split('-py3')[0]}.dist-info",
    }
    top_level = next(name for name in names if name.endswith(".dist-info/top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["social_amazon_link"]
    # What an app needs at run time beside the code: the pages and the plugin.
    assert "social_amazon_link/flask/templates/social_amazon_link/error.html" in names
    assert "social_amazon_link/emulator/templates/lwa_emulator/authorize.html" in names
    assert "social_amazon_link/py.typed" in names


def test_an_app_with_its_own_pipelines_module_signs_in_with_the_wheel(own_app, wheel, tmp_path):
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    # PYTHONPATH comes before the editable install's finder: the wheel's code runs.
    result = run_own_app(own_app, installed)
    assert_signed_in(result, own_app)
    assert result["library"] == str(installed / "social_amazon_link" / "__init__.py")
    assert result["steps"] == str(installed / "social_amazon_link" / "pipelines" / "__init__.py")
