"""Where the guardrail catalog that ships with netguard is: package data in a wheel, policies/ in a source checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

CATALOG_PACKAGE_DIR = "catalog"  # webhook/catalog in a wheel: the top-level policies/ (pyproject.toml package-dir)


def packaged_catalog() -> Path:
    """The catalog that ships with netguard, whatever the working directory: a team's repository may have a
    policies/ folder of its own, so the default is never looked up relative to the current directory.

    Installed from a wheel (pip, pipx) it is the package data `webhook/catalog`, which the build maps from the
    top-level policies/; run from a source checkout (an editable install, `make run`, PYTHONPATH) it is that
    checkout's policies/ itself, beside webhook/. Either way the files and so the revision are the same. When
    neither exists the wheel's location is returned, and loading it says "policies folder not found".
    """
    package = resources.files("webhook")
    installed = Path(str(package)) / CATALOG_PACKAGE_DIR
    if installed.is_dir():
        return installed
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "policies").is_dir():
        return checkout / "policies"
    return installed
