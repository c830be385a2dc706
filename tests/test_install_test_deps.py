"""``make test`` on a fresh machine: tools/install_test_deps.py installs or stops at once.

The script runs for real, in a subprocess; what it would install is seen
through a stand-in ``apt-get`` first on PATH (it records its arguments and
puts the files it "installs" under ``SAL_TEST_DEPS_SYSROOT``), and a non-root
user through ``SAL_TEST_DEPS_EUID``. Nothing is installed on this machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "install_test_deps.py"

FAKE_APT_GET = """#!/bin/sh
echo "$*" >> "{log}"
if [ "$1" = install ]; then
    for package in "$@"; do
        case "$package" in
            chromium) mkdir -p "{sysroot}/usr/bin" && touch "{sysroot}/usr/bin/chromium" ;;
            postgresql-15) mkdir -p "{sysroot}/usr/lib/postgresql/15/bin" &&
                           touch "{sysroot}/usr/lib/postgresql/15/bin/initdb" ;;
        esac
    done
fi
"""

NOT_ROOT = (
    "make test needs what is below, and cannot install them here: this is not running as root.\n"
    "  - PostgreSQL 15's server (/usr/lib/postgresql/15/bin): each database test also runs on "
    "a PostgreSQL server the suite starts\n"
    "  - Debian's Chromium (/usr/bin/chromium): the browser tests (tests/test_browser.py) "
    "drive it\n"
    "Install them:  sudo apt-get install postgresql-15 chromium\n"
    'Or run the tests without them:  make test PYTEST_ARGS="--db sqlite '
    '--ignore=tests/test_browser.py"\n'
)


def only_chromium(reason: str) -> str:
    """The message when Chromium alone is missing and cannot be installed."""
    return (
        f"make test needs what is below, and cannot install it here: {reason}.\n"
        "  - Debian's Chromium (/usr/bin/chromium): the browser tests (tests/test_browser.py) "
        "drive it\n"
        "Install it:  sudo apt-get install chromium\n"
        'Or run the tests without it:  make test PYTEST_ARGS="--ignore=tests/test_browser.py"\n'
    )


class Machine:
    """A pretend machine: a sysroot, a stand-in apt-get, a user id."""

    def __init__(self, tmp_path: Path, *, sysroot: str | None = None, apt: bool = True) -> None:
        self.sysroot = sysroot if sysroot is not None else str(tmp_path / "root")
        self.log = tmp_path / "apt-get.log"
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        if apt:
            fake = bin_dir / "apt-get"
            fake.write_text(FAKE_APT_GET.format(log=self.log, sysroot=self.sysroot))
            fake.chmod(0o755)
        # make from this machine, nothing else of /usr/bin (so no real apt-get).
        (bin_dir / "make").symlink_to("/usr/bin/make")
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}:/bin" if apt else str(bin_dir),
            "SAL_TEST_DEPS_SYSROOT": self.sysroot,
        }
        self.env.pop("TEST_POSTGRES_URL", None)

    def run(self, *args: str, euid: int = 0) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "SAL_TEST_DEPS_EUID": str(euid)}
        return subprocess.run(
            [sys.executable, str(SCRIPT), *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def apt_calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def test_everything_present_does_nothing_quickly(tmp_path):
    # This machine's real files (empty sysroot prefix): all there.
    machine = Machine(tmp_path, sysroot="")
    started = time.monotonic()
    done = machine.run("-p", "no:cacheprovider")
    assert time.monotonic() - started < 5
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert machine.apt_calls() == []  # not even apt-get update


def test_missing_and_not_root_stops_at_once_saying_what_to_install(tmp_path):
    machine = Machine(tmp_path)
    started = time.monotonic()
    done = machine.run(euid=1000)
    assert time.monotonic() - started < 5
    assert done.returncode == 1
    assert done.stderr == NOT_ROOT
    assert done.stdout == ""
    assert machine.apt_calls() == []


def test_missing_without_apt_get_says_so(tmp_path):
    machine = Machine(tmp_path, apt=False)
    (Path(machine.sysroot) / "usr/lib/postgresql/15/bin").mkdir(parents=True)
    (Path(machine.sysroot) / "usr/lib/postgresql/15/bin/initdb").touch()
    done = machine.run()
    assert done.returncode == 1
    assert done.stderr == only_chromium("apt-get was not found (this is not Debian or Ubuntu)")


def test_missing_as_root_installs_with_apt_get(tmp_path):
    machine = Machine(tmp_path)
    done = machine.run("-p", "no:cacheprovider")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Installing postgresql-15, chromium for the tests (apt-get)...\n"
    assert machine.apt_calls() == ["update -qq", "install -y -qq postgresql-15 chromium"]
    # Installed: the next run does nothing.
    assert machine.run().returncode == 0
    assert len(machine.apt_calls()) == 2


def test_a_failing_apt_get_ends_with_the_same_message(tmp_path):
    machine = Machine(tmp_path)
    failing = Path(machine.env["PATH"].split(":")[0]) / "apt-get"
    failing.write_text(f'#!/bin/sh\necho "$*" >> "{machine.log}"\nexit 100\n')
    done = machine.run("--db", "sqlite")
    assert done.returncode == 1
    assert done.stderr == only_chromium("apt-get update -qq failed (status 100)")
    assert machine.apt_calls() == ["update -qq"]


@pytest.mark.parametrize(
    ("args", "without"),
    [
        (["--db", "sqlite", "--ignore=tests/test_browser.py"], ["--db sqlite", "--ignore="]),
        (["--db=sqlite", "tests/test_settings.py", "-k", "scope"], ["--db sqlite", "leave out"]),
    ],
)
def test_asked_to_run_without_them_needs_neither_and_says_so(tmp_path, args, without):
    machine = Machine(tmp_path)
    done = machine.run(*args, euid=1000)
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "PostgreSQL 15's server (/usr/lib/postgresql/15/bin) is not installed; not needed as asked",
        "Debian's Chromium (/usr/bin/chromium) is not installed; not needed as asked",
    ]
    assert all(how in line for how, line in zip(without, lines, strict=True))


@pytest.mark.parametrize(
    ("args", "missing"),
    [
        ([], "postgresql-15 chromium"),
        (["--db", "sqlite,postgres", "tests/test_browser.py::test_x"], "postgresql-15 chromium"),
        (["--db", "sqlite", "tests"], "chromium"),
        (["--db", "postgres", "tests/test_settings.py"], "postgresql-15"),
    ],
)
def test_what_the_run_selects_is_needed(tmp_path, args, missing):
    machine = Machine(tmp_path)
    done = machine.run(*args, euid=1000)
    assert done.returncode == 1
    assert f"sudo apt-get install {missing}\n" in done.stderr


def test_make_test_stops_before_pytest_when_it_cannot_install(tmp_path):
    machine = Machine(tmp_path)
    started = time.monotonic()
    done = subprocess.run(
        ["make", "--no-print-directory", "test", "PYTEST_ARGS=-p no:cacheprovider"],
        env={**machine.env, "SAL_TEST_DEPS_EUID": "1000", "PATH": os.environ["PATH"]},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - started < 10
    assert done.returncode != 0
    assert NOT_ROOT in done.stderr
    assert "test session starts" not in done.stdout  # pytest never ran
