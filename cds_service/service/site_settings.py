"""Per-site settings (CDS_SITE_SETTINGS): for each trusted issuer, or issuer and tenant, which rules are switched off
and whether the site runs in silent mode (cards computed and recorded, none sent: monitoring before go-live).

The file is checked against its schema when the service starts, and an error names the entry and field:

    {
      "default": {"rules_off": []},
      "sites": [
        {"issuer": "https://ehr.example.org", "silent": true},
        {"issuer": "https://ehr.example.org", "tenant": "clinic-b", "rules_off": ["R20", "R07"]}
      ]
    }

The most specific entry wins: issuer and tenant, then the issuer alone, then `default`. A caller without a verified
token (CDS_AUTH off or optional) has no issuer and gets `default`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .settings import SettingsError


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    silent: bool = False
    rules_off: list[str] = Field(default_factory=list)
    note: str | None = None


class _Site(_Entry):
    issuer: str = Field(min_length=1)
    tenant: str | None = Field(default=None, min_length=1)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: _Entry = Field(default_factory=_Entry)
    sites: list[_Site] = Field(default_factory=list)


@dataclass(frozen=True)
class Site:
    """What applies to one caller."""

    silent: bool = False
    rules_off: frozenset[str] = frozenset()
    name: str = "default"


class SiteSettings:
    def __init__(self, default: Site = Site(), sites: dict[tuple[str, str | None], Site] | None = None):
        self.default = default
        self.sites = dict(sites or {})

    def for_caller(self, issuer: str | None, tenant: str | None) -> Site:
        if issuer is None:
            return self.default
        return self.sites.get((issuer, tenant)) or self.sites.get((issuer, None)) or self.default

    @classmethod
    def load(cls, path: Path | str, rule_ids: Iterable[str]) -> "SiteSettings":
        """The file's settings; SettingsError with the place of the first problem."""
        known = set(rule_ids)
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise SettingsError(f"CDS_SITE_SETTINGS {path}: not readable JSON ({error})") from None
        try:
            parsed = _File.model_validate(document)
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
            raise SettingsError(f"CDS_SITE_SETTINGS {path}: {where}: {problem['msg']}") from None

        def site(entry: _Entry, where: str, name: str) -> Site:
            unknown = sorted(set(entry.rules_off) - known)
            if unknown:
                raise SettingsError(
                    f"CDS_SITE_SETTINGS {path}: {where}.rules_off: unknown rule ids {', '.join(unknown)} "
                    f"(see calcinosis-cds rules)"
                )
            return Site(entry.silent, frozenset(entry.rules_off), name)

        sites: dict[tuple[str, str | None], Site] = {}
        for index, entry in enumerate(parsed.sites):
            key = (entry.issuer, entry.tenant)
            if key in sites:
                raise SettingsError(f"CDS_SITE_SETTINGS {path}: sites.{index}: a second entry for {key}")
            name = entry.issuer + (f" / {entry.tenant}" if entry.tenant else "")
            sites[key] = site(entry, f"sites.{index}", name)
        return cls(site(parsed.default, "default", "default"), sites)
