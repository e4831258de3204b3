"""Small helpers for card text: how evidence reads in a card's Markdown detail."""

from __future__ import annotations


def describe(item: dict) -> str:
    """One line of Markdown for one piece of evidence (a lab value, a condition, a medication)."""
    if "analyte" in item:
        line = f"{item['analyte']} {item['value']:g} {item['unit']} on {item['effective'][:10]}"
        if item.get("reported"):
            line += f" (reported as {item['reported']})"
        if item.get("calculated"):
            line += " (calculated)"
        if item.get("assessment"):
            line += f": {item['assessment']}"
        return line
    label = item.get("text") or item.get("matched") or item.get("reference", "")
    return f"{label} ({item['reference']})" if item.get("reference") and label != item.get("reference") else str(label)


def bullet_list(items: list[dict]) -> str:
    return "\n".join(f"- {describe(item)}" for item in items)
