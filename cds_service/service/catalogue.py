"""The catalogue of rules, generated from the declarations in cards/, so a clinical reviewer reads what runs."""

from __future__ import annotations

import json

import cards


def catalogue() -> list[dict]:
    knowledge = cards.knowledge()
    scope = knowledge.gate
    entries = [{"id": scope.id, "title": scope.title, "trigger": scope.trigger, "hooks": ["all"],
                "citation": "Clinical specification, decision A1 (scope of the service)"}]
    for rule in knowledge.rules.values():
        entry = {
            "id": rule.id,
            "title": rule.title,
            "article": rule.article,
            "trigger": rule.trigger,
            # A rule on no hook is not shown on cards (R07, decision A20); the catalogue says so.
            "hooks": list(rule.hooks) or ["none (not shown on cards)"],
            "evidence": rule.evidence_level,
            "citation": knowledge.citation(rule),
        }
        if rule.exclusions:
            entry["exclusions"] = list(rule.exclusions)
        if rule.outside_article:
            entry["outsideArticle"] = rule.outside_article
        if rule.suppresses:
            entry["takesPrecedenceOver"] = list(rule.suppresses)
        if not rule.in_calciphylaxis_alone:
            entry["calciphylaxisAlone"] = "not shown: an option for dystrophic calcinosis (decision A17)"
        entries.append(entry)
    return entries


# What each format prints of an entry, in its order: (field, label). Absent optional fields are left out.
_MARKDOWN_FIELDS = (("trigger", "**Trigger:**"), ("exclusions", "**Not when:**"), ("hooks", "**Hooks:**"),
                    ("evidence", "**Evidence:**"),
                    ("citation", "**Citation:**"), ("outsideArticle", "**Outside the article:**"),
                    ("takesPrecedenceOver", "**Takes precedence over:**"),
                    ("calciphylaxisAlone", "**In calciphylaxis alone:**"))
_TEXT_FIELDS = (("hooks", "hooks:    "), ("trigger", "trigger:  "), ("exclusions", "not when: "), ("evidence", "evidence: "),
                ("citation", "source:   "), ("outsideArticle", "note:     "), ("takesPrecedenceOver", "precedes: "),
                ("calciphylaxisAlone", "calciphylaxis alone: "))


def _value(value) -> str:
    return "; ".join(value) if isinstance(value, list) else str(value)


def render_catalogue(fmt: str = "text") -> str:
    entries = catalogue()
    if fmt == "json":
        return json.dumps(entries, indent=2)
    lines = []
    for e in entries:
        if fmt == "markdown":
            lines.append(f"### {e['id']}: {e['title']}\n")
            if e.get("article"):
                lines.append(f"> {e['article']}\n")
            lines += [f"- {label} {_value(e[field])}" for field, label in _MARKDOWN_FIELDS if e.get(field)]
        else:
            lines.append(f"{e['id']}  {e['title']}")
            lines += [f"    {label}{_value(e[field])}" for field, label in _TEXT_FIELDS if e.get(field)]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def catalogue_document() -> str:
    """docs/rules.md: the Markdown catalogue with a header saying how it is made."""
    header = (
        "# Rule catalogue\n\n"
        "Generated from the declarations in `cards/rules/` by `calcinosis-cds rules --output docs/rules.md`; "
        "a test fails when this file is out of date.\n\n"
    )
    return header + render_catalogue("markdown")
