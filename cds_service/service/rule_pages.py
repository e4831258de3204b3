"""The rule pages: what each rule says and reads, for the clinician who follows a card's link and for review.

GET /rules         the catalogue: the scope gate and every rule, with its evidence and hooks
GET /rules/{id}    one rule: the article's statement and citation, the evidence level, the trigger and exclusions in
                   words, the codes it reads (value sets, analytes, observations, referrals) with their verification
                   status and source, the numbers it compares them with, and the sources those name (S1-S15)

Server-rendered HTML (templates/rule_pages/), with no script and nothing loaded from another host (one inline style
sheet, system fonts; a Content-Security-Policy says so to the browser), so that it works in an EHR's embedded
browser and on a phone. No token is asked for: the pages hold no patient data. CORS is the app's, as for every route.

An unknown rule id is 404 as an HTML page linking to the catalogue when the caller asks for HTML (a person who
followed an old link), else the service's JSON error: scripts and the CDS client keep one error format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Iterable

from flask import Blueprint, Response, redirect, render_template, request, url_for
from markdown_it import MarkdownIt
from markupsafe import Markup, escape

import cards
from cards.bibliography import SourceEntry, source_list
from cards.definitions import RECENT_CARE_DAYS
from cards.referrals import REFERRALS

from .errors import NotFound
from .rule_reads import Reads, Threshold, rule_reads

rule_pages = Blueprint("rule_pages", __name__, template_folder="templates")

# A source key as a word of its own ("S6", "(S8, S10)"), as the clinical specification writes them; not "S72.0".
SOURCE_KEY = re.compile(r"(?<![\w.])S(\d{1,2})(?![\w]|\.\d)")
SYSTEM_NAMES = {"icd10cm": "ICD-10-CM", "icd10": "ICD-10", "snomed": "SNOMED CT", "loinc": "LOINC",
                "rxnorm": "RxNorm", "atc": "ATC", "ucum": "UCUM"}
HOOK_WORDS = {"patient-view": "when the chart is opened", "order-select": "while an order is being written",
              "order-sign": "when orders are signed"}
# The style sheet is inline, and there is no script: the browser is told to load nothing else.
CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; "
                           "form-action 'none'")
_MARKDOWN = MarkdownIt("commonmark", {"html": False})  # the sources' text is Markdown; raw HTML in it is escaped


@dataclass(frozen=True)
class CodeRow:
    system: str
    code: str
    display: str
    status: str
    source: str
    subcodes: bool  # an ICD-10-CM code matched by prefix: the code and every code under it


@dataclass(frozen=True)
class CodeTable:
    name: str
    title: str
    codes: tuple[CodeRow, ...]
    words: tuple[str, ...] = ()  # matched in a Condition's or medication's text when no code matches
    not_words: tuple[str, ...] = ()  # text that never matches ("not pregnant")
    notes: tuple[str, ...] = ()  # window, unit, answers...


@dataclass(frozen=True)
class RuleLink:
    id: str
    title: str


@dataclass(frozen=True)
class RulePage:
    id: str
    title: str
    is_gate: bool
    article: str
    citation: str
    evidence_level: str
    trigger: str
    exclusions: tuple[str, ...]
    outside_article: str | None
    hooks: tuple[tuple[str, str], ...]  # (hook, in words)
    suppresses: tuple[RuleLink, ...]
    suppressed_by: tuple[RuleLink, ...]
    own_source: tuple[str, str] | None  # (label, url) of the rule's own source where it is not the article
    value_sets: tuple[CodeTable, ...]
    labs: tuple[CodeTable, ...]
    observations: tuple[CodeTable, ...]
    referrals: tuple[CodeTable, ...]
    thresholds: tuple[Threshold, ...]
    statuses: tuple[tuple[str, Markup], ...] = ()  # the verification statuses the page shows, with their meaning
    sources: tuple[SourceEntry, ...] = ()  # the entry of every source key the page names


def _row(entry: dict, system: str | None = None) -> CodeRow:
    key = entry.get("system", system or "")
    return CodeRow(SYSTEM_NAMES.get(key, key), str(entry.get("code", "")), entry.get("display", ""),
                   entry.get("status", "UNVERIFIED"), entry.get("source", ""), entry.get("match") == "prefix")


def _value_set(name: str) -> CodeTable:
    vs = cards.terminology().value_set(name)
    return CodeTable(name, vs.title, tuple(_row(e) for e in vs.codes), tuple(vs.words), tuple(vs.exclude_words))


def _lab(name: str) -> CodeTable:
    lab = cards.terminology().labs[name]
    notes = (f"The latest result of the last {lab.window_days} days counts.",
             f"Values are compared in {lab.unit}, converted from {', '.join(sorted(lab.factors))}.")
    return CodeTable(name, lab.title, tuple(_row(e, "loinc") for e in lab.codes.values()), notes=notes)


def _observation(name: str) -> CodeTable:
    definition = cards.terminology().observations[name]
    rows = [_row(e, "loinc") for e in definition["codes"]]
    notes = [f"The latest answer of the last {definition['window_days']} days counts."]
    for answer in ("positive", "negative"):
        if definition.get(answer):
            codes = ", ".join(f"{e['display']} ({SYSTEM_NAMES.get(e['system'], e['system'])} {e['code']}, "
                              f"{e['status']}, {e['source']})" for e in definition[answer])
            notes.append(f"Answers read as {answer}: {codes}.")
    return CodeTable(name, definition.get("title", name), tuple(rows), notes=tuple(notes))


def _referral(key: str) -> CodeTable:
    referral = REFERRALS[key]
    notes = [f"Not suggested again when a referral with this code is among the draft orders or on record from the "
             f"last {RECENT_CARE_DAYS} days."]
    if referral.encounter_value_set:
        notes.append(f"Nor when an encounter with the specialty (value set {referral.encounter_value_set}, listed "
                     "above) is on record from that time.")
    # cards/referrals.py holds only referral codes that specification §1.5 lists as VERIFIED.
    row = CodeRow("SNOMED CT", referral.snomed, referral.display, "VERIFIED", "specification §1.5", False)
    return CodeTable(key, referral.display, (row,), notes=tuple(notes))


def source_keys(texts: Iterable[str]) -> list[str]:
    found = {f"S{m.group(1)}" for text in texts if text for m in SOURCE_KEY.finditer(text)}
    return sorted(found, key=lambda key: int(key[1:]))


def _texts(page: RulePage) -> Iterable[str]:
    yield from (page.article, page.trigger, page.evidence_level, page.outside_article or "", *page.exclusions)
    yield from (page.own_source or ())
    for table in (*page.value_sets, *page.labs, *page.observations, *page.referrals):
        yield table.title
        yield from table.notes
        yield from (row.source for row in table.codes)
    yield from (t.note for t in page.thresholds)


def _own_source(rule: Any, article_url: str) -> tuple[str, str] | None:
    """The rule's own source, where it is not the article: a `source` with a label and a url (an object or a dict),
    or `source_label` and `source_url`. Rules declared before per-rule sources existed have none."""
    declared = getattr(rule, "source", None)
    if isinstance(declared, dict):
        label, url = declared.get("label"), declared.get("url")
    elif declared is not None:
        label, url = getattr(declared, "label", None), getattr(declared, "url", None)
    else:
        label, url = getattr(rule, "source_label", None), getattr(rule, "source_url", None)
    web = isinstance(url, str) and url.startswith(("https://", "http://"))  # never a javascript: address
    if isinstance(label, str) and label and web and url != article_url:
        return label, url
    return None


@lru_cache(maxsize=None)
def rule_page(rule_id: str) -> RulePage:
    """Everything a rule page shows (KeyError for an unknown id); the knowledge does not change while running."""
    knowledge = cards.knowledge()
    reads: Reads = rule_reads(rule_id)
    if rule_id == knowledge.gate.id:
        gate = knowledge.gate
        base = dict(id=gate.id, title=gate.title, is_gate=True, article="",
                    citation="Clinical specification, decision A1 (scope of the service)",
                    evidence_level="Product decision A1 of the clinical specification", trigger=gate.trigger,
                    exclusions=tuple(getattr(gate, "exclusions", ())), outside_article=None,
                    hooks=tuple((h, HOOK_WORDS[h]) for h in HOOK_WORDS), suppresses=(), suppressed_by=(),
                    own_source=None)
    else:
        rule = knowledge.rules[rule_id]
        by_id = knowledge.rules
        base = dict(
            id=rule.id, title=rule.title, is_gate=False, article=rule.article, citation=knowledge.citation(rule),
            evidence_level=rule.evidence_level, trigger=rule.trigger,
            exclusions=tuple(getattr(rule, "exclusions", ()) or ()), outside_article=rule.outside_article,
            hooks=tuple((h, words) for h, words in HOOK_WORDS.items() if h in rule.hooks),
            suppresses=tuple(RuleLink(i, by_id[i].title) for i in rule.suppresses if i in by_id),
            suppressed_by=tuple(RuleLink(r.id, r.title) for r in by_id.values() if rule.id in r.suppresses),
            own_source=_own_source(rule, knowledge.source.url),
        )
    page = RulePage(
        **base,
        value_sets=tuple(_value_set(n) for n in reads.value_sets),
        labs=tuple(_lab(n) for n in reads.labs),
        observations=tuple(_observation(n) for n in reads.observations),
        referrals=tuple(_referral(k) for k in reads.referrals),
        thresholds=reads.thresholds,
    )
    # The legend and the list of sources cover what the page shows, once the rest of it is known.
    shown = {row.status for t in (*page.value_sets, *page.labs, *page.observations, *page.referrals) for row in t.codes}
    sources = source_list()
    return replace(
        page,
        statuses=tuple((s, markdown(m)) for s, m in sources.statuses.items() if s in shown),
        sources=tuple(sources.sources[key] for key in source_keys(_texts(page)) if key in sources.sources),
    )


def catalogue_entries() -> list[dict[str, Any]]:
    knowledge = cards.knowledge()
    gate = knowledge.gate
    return [dict(id=gate.id, title=gate.title, evidence="Product decision A1", hooks=tuple(HOOK_WORDS), gate=True)] + [
        dict(id=r.id, title=r.title, evidence=r.evidence_level, hooks=r.hooks, gate=False)
        for r in knowledge.rules.values()
    ]


def markdown(text: str) -> Markup:
    """Inline Markdown (the sources' *titles* and `names`) as HTML; any HTML in the text is escaped."""
    return Markup(_MARKDOWN.renderInline(text))


@rule_pages.app_template_filter("link_sources")
def link_sources(text: str | None) -> Markup:
    """Escaped text whose source keys link to the page's list of sources."""
    escaped = str(escape(text or ""))
    return Markup(SOURCE_KEY.sub(lambda m: f'<a href="#S{m.group(1)}">S{m.group(1)}</a>', escaped))


def _page(html: str, status: int = 200) -> Response:
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def _context() -> dict[str, Any]:
    knowledge = cards.knowledge()
    return {"article": knowledge.source, "version": knowledge.version, "catalogue_url": url_for("rule_pages.catalogue")}


@rule_pages.get("/rules")
def catalogue():
    return _page(render_template("rule_pages/catalogue.html", entries=catalogue_entries(), **_context()))


@rule_pages.get("/rules/<rule_id>")
def rule(rule_id: str):
    known = [cards.knowledge().gate.id, *cards.knowledge().rules]
    if rule_id not in known:
        spelled = {k.lower(): k for k in known}.get(rule_id.lower())
        if spelled:  # r05 -> R05: a hand-typed address
            return redirect(url_for("rule_pages.rule", rule_id=spelled), code=308)
        if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
            return _page(render_template("rule_pages/not_found.html", rule_id=rule_id, **_context()), 404)
        raise NotFound(f"no rule {rule_id!r}; the catalogue of rules is at /rules")
    page = rule_page(rule_id)
    return _page(render_template("rule_pages/rule.html", page=page, markdown=markdown, **_context()))
