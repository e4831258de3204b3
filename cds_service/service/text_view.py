"""Cards for a person at a terminal (`calcinosis-cds evaluate --format text`): one panel a card, coloured by its
indicator, with the summary, the detail's Markdown rendered, the suggestions (and what each would do), the links and
the source. Rendered with rich; without a terminal (a pipe, a file) the same text comes out without colour.

JSON stays the CLI's default: it is what scripts and the CDS client read. This view is for reading only and leaves
out what a person cannot use at a glance (FHIR resources inside actions, uuids, the extension's evidence).
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from rich.console import Console, Group
from rich.markdown import Markdown
from rich.padding import Padding
from rich.panel import Panel
from rich.text import Text

INDICATOR_STYLES = {"critical": "bold white on red", "warning": "bold black on yellow", "info": "bold white on blue"}
BORDER_STYLES = {"critical": "red", "warning": "yellow", "info": "blue"}
# What the response's own extension reports, in words (the data stay in the JSON output).
REPORT_WORDS = {"skippedResources": "resources skipped", "unusedLabResults": "laboratory results not used",
                "missingData": "prefetch data missing", "failedRules": "rules failed"}
EXTENSION_KEY = "calcinosis-cds"


def _items(value: Any) -> list[dict]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _card(card: dict) -> Panel:
    indicator = card.get("indicator") if card.get("indicator") in INDICATOR_STYLES else "info"
    parts: list[Any] = [Text(str(card.get("summary", "")), style="bold")]
    if isinstance(card.get("detail"), str) and card["detail"].strip():
        parts += [Text(), Markdown(card["detail"])]
    suggestions = _items(card.get("suggestions"))
    if suggestions:
        how = "choose any" if card.get("selectionBehavior") == "any" else "choose at most one"
        parts += [Text(), Text(f"Suggestions ({how}):", style="bold")]
        for suggestion in suggestions:
            label = Text(f"• {suggestion.get('label', '')}")
            if suggestion.get("isRecommended"):
                label.append("  (recommended)", style="green")
            parts.append(Padding(label, (0, 0, 0, 2)))
            for action in _items(suggestion.get("actions")):
                what = Text(f"{action.get('type', '')}: {action.get('description', '')}", style="dim")
                parts.append(Padding(what, (0, 0, 0, 6)))
    links = _items(card.get("links"))
    if links:
        parts += [Text(), Text("Links:", style="bold")]
        for link in links:
            line = Text(f"• {link.get('label', '')}: ")
            line.append(str(link.get("url", "")), style="underline")
            parts.append(Padding(line, (0, 0, 0, 2)))
    source = card.get("source") if isinstance(card.get("source"), dict) else {}
    if source.get("label"):
        line = Text(f"Source: {source['label']}", style="dim")
        if source.get("url"):
            line.append(f" ({source['url']})", style="dim")
        parts += [Text(), line]
    return Panel(Group(*parts), title=Text(f" {indicator.upper()} ", style=INDICATOR_STYLES[indicator]),
                 title_align="left", border_style=BORDER_STYLES[indicator], padding=(0, 1))


def _report(response: dict) -> str | None:
    extension = response.get("extension") if isinstance(response.get("extension"), dict) else {}
    report = extension.get(EXTENSION_KEY) if isinstance(extension.get(EXTENSION_KEY), dict) else {}
    said = [f"{words}: {len(value) if isinstance(value, (list, dict)) else value}"
            for key, words in REPORT_WORDS.items() if (value := report.get(key))]
    return "Note: " + ", ".join(said) + " (details in --format json)." if said else None


def print_cards(response: dict, file: TextIO | None = None, *, width: int | None = None) -> None:
    """Write a CDS Hooks response's cards for a reader; colour only when `file` is a terminal."""
    console = Console(file=file or sys.stdout, width=width, soft_wrap=False, highlight=False)
    cards = _items(response.get("cards"))
    console.print(Text(f"{len(cards)} card{'' if len(cards) == 1 else 's'}", style="bold")
                  if cards else Text("No cards: nothing to show for this patient.", style="bold"))
    for card in cards:
        console.print(_card(card))
    if note := _report(response):
        console.print(Text(note, style="dim"))
