"""The distribution: one top-level name, and a base install that is the neutral core.

Each app runs in a subprocess whose working folder holds the app's own
``pipelines.py``, with ``-P`` and an explicit ``PYTHONPATH``: ``python -m
pytest`` puts this repository on ``sys.path``, where its ``pipelines/`` folder
would hide the very clash under test.

The base distribution (no extra) is what a Django app installs: it must bring
no web framework, and importing the core must load none. Flask, Flask-Login,
social-auth-app-flask and SQLAlchemy come with ``[flask]``; Authlib, Flask and
Werkzeug with ``[emulator]``, which the ``lwa_emulator`` fixture needs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent

# The framework-neutral core: importing any of these loads no web framework.
CORE_MODULES = (
    "social_amazon_link",
    "social_amazon_link.accounts",
    "social_amazon_link.backend",
    "social_amazon_link.errors",
    "social_amazon_link.lwa",
    "social_amazon_link.sealing",
    "social_amazon_link.settings",
    "social_amazon_link.text",
    "social_amazon_link.pipelines",
    *(
        f"social_amazon_link.pipelines.{path.stem}"
        for path in sorted((ROOT / "pipelines").glob("*.py"))
        if path.stem != "__init__"
    ),
    "social_amazon_link.storage_contract",
    "social_amazon_link.flow",
    *(
        f"social_amazon_link.flow.{path.stem}"
        for path in sorted((ROOT / "social_amazon_link" / "flow").glob("*.py"))
        if path.stem != "__init__"
    ),
    "social_amazon_link.sqlalchemy_storage",
    "social_amazon_link.migrations",
)
# Of the core, what imports SQLAlchemy (the [flask] extra): the base install leaves it out.
NEEDS_SQLALCHEMY = ("social_amazon_link.sqlalchemy_storage", "social_amazon_link.migrations")

# Top-level import names of web frameworks and their parts.
WEB_FRAMEWORKS = frozenset(
    {
        "flask",
        "flask_login",
        "flask_wtf",
        "social_flask",
        "werkzeug",
        "jinja2",
        "itsdangerous",
        "wtforms",
        "authlib",
        "django",
        "social_django",
        "starlette",
        "fastapi",
        "quart",
        "pyramid",
        "tornado",
        "aiohttp",
        "waitress",
    }
)
# Their distributions, and SQLAlchemy: none comes with the base install.
NOT_IN_THE_BASE = frozenset(
    {
        "flask",
        "flask-login",
        "social-auth-app-flask",
        "sqlalchemy",
        "authlib",
        "werkzeug",
        "jinja2",
        "django",
        "social-auth-app-django",
        "starlette",
        "fastapi",
    }
)

# Imports the modules named after its first argument (frameworks, comma-separated)
# and prints which frameworks got loaded, each with the import chain that first asked.
IMPORT_AND_WATCH = """
import importlib, json, sys, traceback

frameworks = set(sys.argv[1].split(","))
chains = {}


class Watch:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in frameworks and top not in chains:
            stack = traceback.extract_stack()[:-1]
            chains[top] = [f"{f.filename}:{f.lineno}" for f in stack if "<frozen" not in f.filename]
        return None


sys.meta_path.insert(0, Watch())
for module in sys.argv[2:]:
    importlib.import_module(module)
loaded = sorted({name.partition(".")[0] for name in sys.modules} & frameworks)
print(json.dumps({"loaded": loaded, "chains": {name: chains.get(name) for name in loaded}}))
"""

# A project's tests, one of which asks for the emulator fixture.
PROJECT_TESTS = """
def test_without_the_emulator():
    assert 1 + 1 == 2


def test_with_the_emulator(lwa_emulator):
    assert lwa_emulator.url
"""

MISSING_EXTRA = (
    "The lwa_emulator fixture needs the emulator's dependencies, and {} is not "
    'installed. Install them with: pip install "social-amazon-link[emulator]"'
)

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


def printed_json(
    command: list[str | Path], cwd: Path, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run a Python program that prints one JSON object, and return that object."""
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def run_own_app(app: Path, *python_path: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (app, *python_path))
    return printed_json([sys.executable, "-P", "main.py", str(app / "app.sqlite3")], app, env)


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


def import_and_watch(python: Path | str, modules: tuple[str, ...], cwd: Path) -> dict[str, Any]:
    """Import ``modules`` in a fresh interpreter; which web frameworks got loaded, and how."""
    frameworks = ",".join(sorted(WEB_FRAMEWORKS))
    return printed_json([python, "-c", IMPORT_AND_WATCH, frameworks, *modules], cwd)


def test_importing_the_core_loads_no_web_framework(tmp_path):
    # In this venv Flask, Authlib and the rest are installed: only an import would load them.
    result = import_and_watch(sys.executable, CORE_MODULES, tmp_path)
    assert result == {"loaded": [], "chains": {}}


def test_the_watch_names_the_import_chain_of_a_framework(tmp_path):
    # The check above sees a framework that a module pulls in, and says from where.
    result = import_and_watch(sys.executable, ("social_amazon_link.flask",), tmp_path)
    assert {"flask", "werkzeug", "flask_login", "social_flask"} <= set(result["loaded"])
    chain = result["chains"]["flask"]
    assert any("social_amazon_link/flask/__init__.py" in frame for frame in chain)


def requirements(wheel: Path) -> dict[str, dict[str, set[str]]]:
    """The wheel's requirements: for the base ("") and each extra, name -> extras it asks for."""
    metadata = Parser().parsestr(
        zipfile.ZipFile(wheel).read(f"{wheel.name.split('-py3')[0]}.dist-info/METADATA").decode()
    )
    found: dict[str, dict[str, set[str]]] = {
        extra: {} for extra in ("", *metadata.get_all("Provides-Extra", []))
    }
    for line in metadata.get_all("Requires-Dist", []):
        requirement = Requirement(line)
        for extra, names in found.items():
            if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                names[canonicalize_name(requirement.name)] = requirement.extras
    return found


def test_the_base_requires_the_neutral_core_and_each_extra_adds_its_framework(wheel):
    found = requirements(wheel)
    base = found[""]
    assert set(base) == {"social-auth-core", "requests", "cryptography"}
    only = {extra: set(names) - set(base) for extra, names in found.items()}
    assert only["flask"] == {"flask", "flask-login", "social-auth-app-flask", "sqlalchemy"}
    assert only["emulator"] == {"authlib", "flask", "werkzeug"}
    assert only["django"] == {"django", "social-auth-app-django"}
    assert only["postgres"] == {"psycopg"}
    assert only["alembic"] == {"alembic"}
    # The test suite drives the Flask integration against the emulator; dev is everything.
    assert found["test"]["social-amazon-link"] == {"flask", "emulator"}
    everything = {"flask", "emulator", "test", "postgres", "alembic", "django"}
    assert found["dev"]["social-amazon-link"] == everything


def test_installing_the_django_extra_brings_no_flask(wheel):
    # What `pip install social-amazon-link[django]` installs, requirements of
    # requirements included, as pip resolves it (nothing is installed).
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q"),
            *("--report", "-", f"social-amazon-link[django] @ {wheel.as_uri()}"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    installed = {canonicalize_name(item["metadata"]["name"]) for item in report["install"]}
    assert {
        "social-amazon-link",
        "django",
        "social-auth-app-django",
        "social-auth-core",
    } <= installed
    django = {"django", "social-auth-app-django"}
    assert installed & (NOT_IN_THE_BASE - django) == set()  # no Flask, Werkzeug, SQLAlchemy...


def test_every_package_of_the_repository_is_in_the_wheel(wheel):
    # A new package folder (say social_amazon_link/flow) must be listed in
    # pyproject.toml's [tool.setuptools] packages, or the wheel goes without it.
    tracked = subprocess.run(
        ["git", "ls-files", "social_amazon_link", "pipelines"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    # The steps' folder is installed as social_amazon_link/pipelines.
    packages = {
        ("social_amazon_link/" if name.startswith("pipelines/") else "")
        + name.removesuffix("/__init__.py")
        for name in tracked
        if name.endswith("/__init__.py")
    }
    in_wheel = {
        name.removesuffix("/__init__.py")
        for name in zipfile.ZipFile(wheel).namelist()
        if name.endswith("/__init__.py")
    }
    assert in_wheel == packages


@pytest.fixture(scope="module")
def base_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel without any extra, and pytest: a Django app's test venv."""
    venv = tmp_path_factory.mktemp("base-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    python = venv / "bin" / "python"
    # This venv's pip, run for the fresh one, from the package index as an app would.
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q", wheel, "pytest"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return python


def test_installing_the_base_brings_no_web_framework(base_venv, tmp_path):
    names = "import importlib.metadata as m; print(*(d.name for d in m.distributions()))"
    listed = subprocess.run([base_venv, "-c", names], capture_output=True, text=True, check=True)
    installed = {canonicalize_name(name) for name in listed.stdout.split()}
    assert {"social-amazon-link", "social-auth-core", "requests", "cryptography"} <= installed
    assert installed & NOT_IN_THE_BASE == set()
    # And the core works there: every module of it but the SQLAlchemy storage imports.
    without_sqlalchemy = tuple(name for name in CORE_MODULES if name not in NEEDS_SQLALCHEMY)
    assert import_and_watch(base_venv, without_sqlalchemy, tmp_path) == {"loaded": [], "chains": {}}


def run_project_tests(
    command: list[str | Path], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """Run PROJECT_TESTS with ``command`` (an interpreter and its pytest), in tmp_path."""
    (tmp_path / "test_project.py").write_text(PROJECT_TESTS)
    return subprocess.run(
        [*command, "-p", "no:cacheprovider", "-q", "test_project.py"],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_pytest_plugin_loads_without_the_emulator_extra(base_venv, tmp_path):
    done = run_project_tests([base_venv, "-m", "pytest"], tmp_path)
    # pytest starts (the plugin loaded), the other test passes, the fixture says what to install.
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 passed, 1 error" in done.stdout
    error = done.stdout.split("ERROR at setup of test_with_the_emulator")[1]
    # The one line, with no ImportError traceback before it.
    assert error.splitlines()[1:2] == [MISSING_EXTRA.format("authlib")]


def test_the_emulator_fixture_names_the_extra_when_authlib_alone_is_missing(tmp_path):
    # A Flask app's venv ([flask] installed, not [emulator]): Flask is there, Authlib is not.
    block = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] == 'authlib':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import pytest\n"
        "sys.exit(pytest.main(sys.argv[1:]))\n"
    )
    done = run_project_tests([sys.executable, "-c", block], tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 passed, 1 error" in done.stdout
    assert MISSING_EXTRA.format("authlib") in done.stdout.splitlines()
