"""What the deployment files (deploy/compose, deploy/kubernetes) may name: the settings the service and its gunicorn
configuration read, so that a variable spelled wrong in a manifest is caught here and not in a cluster."""

from __future__ import annotations

import re
from pathlib import Path

from cds_service.service.settings import ENVIRONMENT_VARIABLES

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"

# Settings of the database wiring (the operated-service issue) that the deployment files name before the service
# reads them. They are accepted only while the service's settings do not know CDS_DATABASE_URL; once the wiring
# declares its settings, every name must be one of them, so a name it spells otherwise (the hash secret's, say)
# fails the deployment tests until the files follow.
PENDING_DATABASE_SETTINGS = frozenset({"CDS_DATABASE_URL", "CDS_HASH_SECRET", "CDS_ADMIN_TOKEN"})


def gunicorn_settings() -> set[str]:
    """The variables docker/gunicorn.conf.py reads (_int("NAME", ...) and os.environ.get("NAME", ...))."""
    text = (ROOT / "docker" / "gunicorn.conf.py").read_text(encoding="utf-8")
    return set(re.findall(r'(?:_int|os\.environ\.get)\(\s*"([A-Z][A-Z0-9_]*)"', text))


def known_settings() -> set[str]:
    names = set(ENVIRONMENT_VARIABLES) | gunicorn_settings()
    if "CDS_DATABASE_URL" not in ENVIRONMENT_VARIABLES:
        names |= PENDING_DATABASE_SETTINGS
    return names


def nginx_size(value: str) -> int:
    """An nginx size ("16m", "1024k", "16777216") in bytes."""
    found = re.fullmatch(r"(\d+)([kKmMgG]?)", value.strip())
    assert found, f"not an nginx size: {value!r}"
    return int(found.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[found.group(2).lower()]
