"""Install what the test suite needs from Debian, or say in one message what to install.

``make test`` runs this before anything else (so a fresh machine learns in the
first seconds, not after the whole suite), and ``.ci/run`` runs it first too:

    python3 tools/install_test_deps.py [the pytest arguments]

The suite needs Debian's ``chromium`` (the browser tests drive it) and
PostgreSQL 15's server (every database test also runs on a throwaway server the
suite starts), and ``make`` to run at all. When all are there it does nothing
else (no ``apt-get update``). When some are missing it installs them with
apt-get as root; where it cannot (not root, no apt-get), it exits with status 1
and one message naming each missing package, why the suite needs it, and how to
run without it. Nothing is skipped unless the pytest arguments ask for it:
``--db sqlite`` (or ``TEST_POSTGRES_URL``) needs no local PostgreSQL;
``--ignore=tests/test_browser.py``, or test paths that leave it out, need no
Chromium.

For its own tests: ``SAL_TEST_DEPS_SYSROOT`` is prepended to the files it looks
for, and ``SAL_TEST_DEPS_EUID`` stands in for the user id.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BROWSER_TESTS = ROOT / "tests" / "test_browser.py"


@dataclass(frozen=True)
class Need:
    package: str
    what: str
    why: str
    file: str | None = None  # an absolute path, checked under the sysroot
    command: str | None = None  # looked up on PATH

    def present(self) -> bool:
        if self.command is not None:
            return shutil.which(self.command) is not None
        sysroot = os.environ.get("SAL_TEST_DEPS_SYSROOT", "")
        return Path(sysroot + str(self.file)).exists()


MAKE = Need("make", "make", "runs the tests", command="make")
CHROMIUM = Need(
    "chromium",
    "Debian's Chromium (/usr/bin/chromium)",
    "the browser tests (tests/test_browser.py) drive it",
    file="/usr/bin/chromium",
)
POSTGRESQL = Need(
    "postgresql-15",
    "PostgreSQL 15's server (/usr/lib/postgresql/15/bin)",
    "each database test also runs on a PostgreSQL server the suite starts",
    file="/usr/lib/postgresql/15/bin/initdb",
)


def needed(pytest_args: list[str]) -> tuple[list[Need], dict[Need, str]]:
    """What this pytest run needs, and what it was asked to do without (and how)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--ignore", action="append", default=[])
    parser.add_argument("paths", nargs="*")
    args, _others = parser.parse_known_args(pytest_args)
    needs, without = [MAKE], {}
    if "postgres" not in args.db.split(","):
        without[POSTGRESQL] = f"--db {args.db}"
    elif os.environ.get("TEST_POSTGRES_URL"):
        without[POSTGRESQL] = "TEST_POSTGRES_URL is set"
    else:
        needs.append(POSTGRESQL)
    # The positional arguments that name files or folders: the tests to run.
    paths = [Path(arg.split("::")[0]).resolve() for arg in args.paths]
    paths = [path for path in paths if path.exists()]
    if BROWSER_TESTS in {Path(path).resolve() for path in args.ignore}:
        without[CHROMIUM] = "--ignore=tests/test_browser.py"
    elif paths and not any(BROWSER_TESTS.is_relative_to(path) for path in paths):
        without[CHROMIUM] = "the tests named leave out tests/test_browser.py"
    else:
        needs.append(CHROMIUM)
    return needs, without


def why_not_installable() -> str | None:
    euid = int(os.environ.get("SAL_TEST_DEPS_EUID", os.geteuid()))
    if shutil.which("apt-get") is None:
        return "apt-get was not found (this is not Debian or Ubuntu)"
    if euid != 0:
        return "this is not running as root"
    return None


def refuse(missing: list[Need], reason: str) -> int:
    them = "them" if len(missing) > 1 else "it"
    lines = [f"make test needs what is below, and cannot install {them} here: {reason}."]
    lines += [f"  - {need.what}: {need.why}" for need in missing]
    lines.append(f"Install {them}:  sudo apt-get install {' '.join(n.package for n in missing)}")
    skips = {POSTGRESQL: "--db sqlite", CHROMIUM: "--ignore=tests/test_browser.py"}
    without = " ".join(skips[need] for need in missing if need in skips)
    if without:
        lines.append(f'Or run the tests without {them}:  make test PYTEST_ARGS="{without}"')
    print("\n".join(lines), file=sys.stderr)
    return 1


def install(missing: list[Need]) -> int:
    packages = [need.package for need in missing]
    print(f"Installing {', '.join(packages)} for the tests (apt-get)...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=False)  # noqa: S603
        if done.returncode != 0:
            return refuse(missing, f"{' '.join(command)} failed (status {done.returncode})")
    still = [need for need in missing if not need.present()]
    if still:
        return refuse(still, "apt-get installed it, but it is still not there")
    return 0


def main(argv: list[str]) -> int:
    needs, without = needed(argv)
    missing = [need for need in needs if not need.present()]
    for need, how in without.items():
        if not need.present():
            print(f"{need.what} is not installed; not needed as asked: {how}.")
    if not missing:
        return 0
    reason = why_not_installable()
    if reason is not None:
        return refuse(missing, reason)
    return install(missing)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
