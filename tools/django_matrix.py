"""Run the Django suites once more on the other supported Django series (``make test-django``).

``make test`` runs every suite, the Django ones included, on the Django that
``.venv`` resolved (the newest the interpreter allows: 6.x on Python 3.12 and
newer, 5.2 LTS on Python 3.11, as Django 6 needs Python 3.12). This script
builds a second venv, ``.venv-django-SERIES``, with the other series, and runs
the tests that take the ``framework`` parameter, as Django only
(``--framework django -k django``), there:

    python tools/django_matrix.py [pytest arguments]

Django 6 needs Python 3.12 or newer: when the interpreter running this is older,
it takes ``python3.13`` or ``python3.12`` from the PATH or pyenv's versions
(this project's machines have pyenv's 3.13), and when there is none it says so
in one line and exits 0 (the series cannot be installed on that machine at all;
docs/tests.md). ``DJANGO_MATRIX_STRICT=1`` makes that an error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Series:
    name: str
    requirement: str
    python: tuple[int, int]

    def holds(self, installed: str) -> bool:
        return installed == self.name or installed.startswith(self.name + ".")


SERIES = (
    Series("5.2", "Django>=5.2,<5.3", (3, 10)),
    Series("6", "Django>=6.0,<7", (3, 12)),
)


def interpreter(minimum: tuple[int, int]) -> str | None:
    """A Python at least ``minimum``: this one, else python3.13 or python3.12 (PATH, pyenv)."""
    if sys.version_info[:2] >= minimum:
        return sys.executable
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates = [shutil.which(name) for name in ("python3.13", "python3.12")]
    candidates += [str(path) for path in sorted(pyenv.glob("3.1[2-9]*/bin/python3"), reverse=True)]
    for candidate in filter(None, candidates):
        # A pyenv shim exists for every version pyenv knows, runnable or not: ask it.
        answer = subprocess.run(  # noqa: S603
            [candidate, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if answer.returncode == 0 and tuple(map(int, answer.stdout.split())) >= minimum:
            return candidate
    return None


def run_series(series: Series, python: str, pytest_args: list[str]) -> int:
    venv = ROOT / f".venv-django-{series.name}"
    bin_python = venv / "bin" / "python"
    stamp = venv / ".installed-stamp"
    if not stamp.exists() or stamp.stat().st_mtime < (ROOT / "pyproject.toml").stat().st_mtime:
        subprocess.run([python, "-m", "venv", str(venv)], check=True)  # noqa: S603
        pip = [str(bin_python), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)  # noqa: S603
        subprocess.run([*pip, "-e", f"{ROOT}[dev]", series.requirement], check=True)  # noqa: S603
        stamp.touch()
    print(f"Django {series.name}: the Django suites in {venv.name}", flush=True)
    command = [str(bin_python), "-m", "pytest", "--framework", "django", "-k", "django"]
    return subprocess.call([*command, *pytest_args], cwd=ROOT)  # noqa: S603


def main(pytest_args: list[str]) -> int:
    installed = version("django")
    status = 0
    for series in SERIES:
        if series.holds(installed):
            continue  # make test ran the Django suites on this series already
        python = interpreter(series.python)
        if python is None:
            wanted = ".".join(map(str, series.python))
            print(
                f"Django {series.name} needs Python {wanted} or newer, and this machine has "
                f"only Python {sys.version_info[0]}.{sys.version_info[1]}: the Django suites ran "
                f"on Django {installed} alone (docs/tests.md)",
                flush=True,
            )
            if os.environ.get("DJANGO_MATRIX_STRICT") == "1":
                status = 1
            continue
        status = run_series(series, python, pytest_args) or status
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
