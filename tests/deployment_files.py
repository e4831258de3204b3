"""What the deployment files (deploy/compose, deploy/kubernetes) may name: the settings the service and its gunicorn
configuration read, so that a variable spelled wrong in a manifest is caught here and not in a cluster."""

from __future__ import annotations

import re
from pathlib import Path

from cds_service.service.settings import ENVIRONMENT_VARIABLES

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def gunicorn_settings() -> set[str]:
    """The variables docker/gunicorn.conf.py reads (_int("NAME", ...) and os.environ.get("NAME", ...))."""
    text = (ROOT / "docker" / "gunicorn.conf.py").read_text(encoding="utf-8")
    return set(re.findall(r'(?:_int|os\.environ\.get)\(\s*"([A-Z][A-Z0-9_]*)"', text))


def known_settings() -> set[str]:
    return set(ENVIRONMENT_VARIABLES) | gunicorn_settings()


def nginx_size(value: str) -> int:
    """An nginx size ("16m", "1024k", "16777216") in bytes."""
    found = re.fullmatch(r"(\d+)([kKmMgG]?)", value.strip())
    assert found, f"not an nginx size: {value!r}"
    return int(found.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[found.group(2).lower()]
