"""Analytics for the people who govern the rules: per rule and ISO week, the cards shown, accepted, overridden, the
acceptance rate and the override reasons.

GET /analytics/rules?weeks=N    JSON (N weeks up to the current one; 12 by default, at most 104)
GET /analytics?weeks=N          the same as a page with charts (inline SVG, nothing loaded from another host)

Both need `Authorization: Bearer <CDS_ADMIN_TOKEN>` (compared in constant time; 401 without it). With no admin token
configured analytics are off and both answer 404, as for a path that does not exist.

Counts come from the store (storage/stats.py): cards by the week they were issued, feedback counted with its card
(a cohort), a card counted once per outcome however often feedback was retried.
"""

from __future__ import annotations

import hmac
from datetime import datetime, time, timedelta, timezone
from typing import Any

from flask import Blueprint, Response, render_template, request

import cards
from cds_service.engine.rules import catalogue_order

from . import charts, metrics
from .errors import BadRequest, NotFound, Unauthorized
from .hooks_api import json_response, state
from .storage import Store, WeeklyStats
from .storage.records import iso_week

DEFAULT_WEEKS, MAX_WEEKS = 12, 104
# The page may load nothing: no script at all, styles and images only from itself.
PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

blueprint = Blueprint("analytics", __name__, template_folder="templates")


def period(now: datetime, weeks: int) -> tuple[datetime, datetime, list[str]]:
    """[since, until) covering `weeks` whole ISO weeks (UTC) up to and including the week of `now`, and their
    labels."""
    today = now.astimezone(timezone.utc).date()
    monday = datetime.combine(today - timedelta(days=today.weekday()), time(), timezone.utc)
    since = monday - timedelta(weeks=weeks - 1)
    labels = [iso_week(since + timedelta(weeks=i)) for i in range(weeks)]
    return since, monday + timedelta(weeks=1), labels


def rule_report(store: Store, now: datetime, weeks: int = DEFAULT_WEEKS) -> dict[str, Any]:
    """The analytics document: what GET /analytics/rules answers and `calcinosis-cds report` prints."""
    since, until, labels = period(now, weeks)
    stats: WeeklyStats = store.rule_weekly_stats(since, until)
    knowledge = cards.knowledge()
    by_rule: dict[str, dict[str, Any]] = {}
    for row in stats.rules:
        entry = by_rule.setdefault(row.rule_id, {
            "rule": row.rule_id,
            "title": knowledge.rules[row.rule_id].title if row.rule_id in knowledge.rules else row.rule_id,
            "weeks": [],
        })
        entry["weeks"].append({
            "week": row.week, "issued": row.issued, "accepted": row.accepted, "overridden": row.overridden,
            "acceptanceRate": _rate(row.accepted, row.issued), "overrideReasons": row.override_reasons,
            "silent": row.silent, "suppressed": row.suppressed,
        })
    for entry in by_rule.values():
        totals = {name: sum(w[name] for w in entry["weeks"])
                  for name in ("issued", "accepted", "overridden", "silent", "suppressed")}
        reasons: dict[str, int] = {}
        for week in entry["weeks"]:
            for code, n in week["overrideReasons"].items():
                reasons[code] = reasons.get(code, 0) + n
        entry["totals"] = {**totals, "acceptanceRate": _rate(totals["accepted"], totals["issued"]),
                           "overrideReasons": dict(sorted(reasons.items()))}
    return {
        "period": {"from": since.isoformat(), "until": until.isoformat(), "weeks": labels},
        "knowledgeVersion": knowledge.version,
        "rules": [by_rule[r] for r in sorted(by_rule, key=catalogue_order)],
        "unknownCardFeedback": stats.unknown_card_feedback,
    }


def _rate(accepted: int, issued: int) -> float | None:
    return round(accepted / issued, 4) if issued else None


def _weeks_parameter() -> int:
    raw = request.args.get("weeks", str(DEFAULT_WEEKS))
    # ASCII digits only ("²" is a digit to str.isdigit, not to int), and few of them.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4) or not 1 <= int(raw) <= MAX_WEEKS:
        raise BadRequest(f"weeks must be a whole number from 1 to {MAX_WEEKS}")
    return int(raw)


def _require_admin() -> None:
    token = state().operations.settings.admin_token
    if not token:
        raise NotFound("analytics are off: no CDS_ADMIN_TOKEN is configured")
    scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        metrics.count_auth_failure("admin token missing or wrong")
        raise Unauthorized("admin token missing or wrong")


def _report() -> dict[str, Any]:
    _require_admin()
    operations = state().operations
    return rule_report(operations.store, operations.clock(), _weeks_parameter())


@blueprint.get("/analytics/rules")
def rules_json():
    response = json_response(_report())
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/analytics")
def page():
    report = _report()
    labels = report["period"]["weeks"]
    charts_by_rule = []
    for entry in report["rules"]:
        weekly = {w["week"]: w for w in entry["weeks"]}
        series = {name: [weekly.get(week, {}).get(name, 0) for week in labels]
                  for name in ("issued", "accepted", "overridden")}
        if entry["totals"]["suppressed"]:
            series["suppressed"] = [weekly.get(week, {}).get("suppressed", 0) for week in labels]
        if entry["totals"]["silent"]:
            series["silent"] = [weekly.get(week, {}).get("silent", 0) for week in labels]
        charts_by_rule.append((entry, charts.weekly_bars(f"{entry['rule']}: {entry['title']}", labels, series)))
    overview = charts.acceptance_bars([
        (e["rule"], e["totals"]["acceptanceRate"], e["totals"]["accepted"], e["totals"]["issued"])
        for e in report["rules"]
    ])
    html = render_template("analytics.html", report=report, overview=overview, charts_by_rule=charts_by_rule)
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    response.headers["Cache-Control"] = "no-store"
    return response
