"""cards/data/sources.json is the clinical specification's §0 (the verification statuses and the sources S1-S15) as
data, so that the service can show a source without reading docs/ at run time; this test keeps the two identical.

After editing §0 of docs/clinical-specification.md, rebuild the data with
    .venv/bin/python -m tests.test_source_list --write
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from cards.bibliography import SOURCES_FILE, source_list

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "docs" / "clinical-specification.md"

_SECTION = re.compile(r"^## §0\b.*?$(.*?)^## ", re.MULTILINE | re.DOTALL)
_STATUS_ROW = re.compile(r"^\| \*\*([A-Z-]+)(?: \([^)]*\))?\*\* \| (.+?) \|$", re.MULTILINE)
_SOURCE = re.compile(r"^### (S\d+) — (.+?)$(.*?)(?=^### |^---|\Z)", re.MULTILINE | re.DOTALL)


def _paragraphs(markdown: str) -> list[str]:
    """The paragraphs of a Markdown block, each unwrapped onto one line; HTML anchors left out."""
    blocks = [" ".join(line.strip() for line in block.splitlines()) for block in re.split(r"\n\s*\n", markdown)]
    return [block for block in blocks if block and not block.startswith("<a id=")]


def sources_from_specification(text: str) -> dict:
    section = _SECTION.search(text)
    assert section, "docs/clinical-specification.md has no §0 section"
    body = section.group(1)
    statuses = [{"status": status, "meaning": meaning} for status, meaning in _STATUS_ROW.findall(body)]
    sources = []
    for key, title, block in _SOURCE.findall(body):
        # "Cited for:" starts a line of the entry's last paragraph: what the source is, then what it is cited for.
        parts = re.split(r"^Cited for:", block, maxsplit=1, flags=re.MULTILINE)
        described, cited = parts if len(parts) == 2 else (block, "")
        sources.append({
            "key": key,
            "title": title.strip(),
            "description": _paragraphs(described),
            "citedFor": " ".join(_paragraphs(cited)),
        })
    return {
        "about": "The clinical specification's §0 (docs/clinical-specification.md) as data: the verification "
                 "statuses of codes and the sources S1-S15. Rebuilt with `python -m tests.test_source_list --write`; "
                 "tests/test_source_list.py keeps it identical to the specification.",
        "statuses": statuses,
        "sources": sources,
    }


def test_the_source_list_is_the_specifications():
    expected = sources_from_specification(SPEC.read_text(encoding="utf-8"))
    shipped = json.loads(SOURCES_FILE.read_text(encoding="utf-8"))
    assert shipped == expected, "cards/data/sources.json differs from §0: run python -m tests.test_source_list --write"


def test_every_source_and_status_of_the_specification_is_there():
    text = SPEC.read_text(encoding="utf-8")
    keys = sorted(set(re.findall(r"^### (S\d+) — ", text, re.MULTILINE)), key=lambda k: int(k[1:]))
    sources = source_list()
    assert list(sources.sources) == keys
    assert len(keys) >= 15
    assert set(sources.statuses) == {"VERIFIED", "ID-VERIFIED", "SECONDARY", "UNVERIFIED"}
    for entry in sources.sources.values():
        assert entry.title and entry.description and entry.cited_for


def test_the_source_list_ships_in_the_wheel():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^cards = \[.*"data/\*\.json"', pyproject, re.MULTILINE)
    assert SOURCES_FILE.parent.name == "data" and SOURCES_FILE.suffix == ".json"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.test_source_list --write")
    data = sources_from_specification(SPEC.read_text(encoding="utf-8"))
    SOURCES_FILE.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {SOURCES_FILE} ({len(data['sources'])} sources)")
