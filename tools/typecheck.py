"""Run mypy on the package as it is installed: the steps as ``social_amazon_link.pipelines``.

The repository keeps the steps in its top-level ``pipelines/`` folder, which
setuptools installs inside the package (``package-dir`` in pyproject.toml).
mypy cannot see through that mapping, so this builds the installed layout
out of symbolic links in ``.venv/typecheck`` and checks it there.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / ".venv" / "typecheck"


def main() -> int:
    shutil.rmtree(TREE, ignore_errors=True)
    package = TREE / "social_amazon_link"
    package.mkdir(parents=True)
    for entry in (ROOT / "social_amazon_link").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    (package / "pipelines").symlink_to(ROOT / "pipelines")
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
    return subprocess.call(  # noqa: S603 (our own interpreter and arguments)
        [*command, "-p", "social_amazon_link", *sys.argv[1:]], cwd=TREE
    )


if __name__ == "__main__":
    sys.exit(main())
