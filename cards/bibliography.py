"""The sources the codes and the rules cite (S1-S15) and what a code's verification status means: the clinical
specification's §0, shipped as data (data/sources.json) so that nothing reads docs/ at run time."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SOURCES_FILE = Path(__file__).resolve().parent / "data" / "sources.json"


@dataclass(frozen=True)
class SourceEntry:
    key: str  # "S6"
    title: str
    description: tuple[str, ...]  # paragraphs, in Markdown
    cited_for: str


@dataclass(frozen=True)
class SourceList:
    statuses: dict[str, str]  # verification status -> its meaning (Markdown)
    sources: dict[str, SourceEntry]  # in the specification's order


@lru_cache(maxsize=1)
def source_list() -> SourceList:
    data = json.loads(SOURCES_FILE.read_text(encoding="utf-8"))
    return SourceList(
        statuses={row["status"]: row["meaning"] for row in data["statuses"]},
        sources={
            row["key"]: SourceEntry(row["key"], row["title"], tuple(row["description"]), row["citedFor"])
            for row in data["sources"]
        },
    )
