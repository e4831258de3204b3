"""`calcinosis-cds report` and `calcinosis-cds db upgrade|current|purge`: the database from a terminal.

They read the state settings only (CDS_DATABASE_URL, CDS_DATA_DIR, CDS_RETENTION_DAYS...), never the URL from the
command line, where `ps` would show its password. The report is the analytics document of GET /analytics/rules, as
a table (with rich's layout when it is installed and the output is a terminal), JSON or CSV.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from datetime import timedelta
from typing import Any

from .clock import system_clock
from .settings import Settings, SettingsError

# Kept light: `calcinosis-cds serve` builds this parser too, before prometheus-client may be imported (its
# multiprocess mode is chosen at import); the database and analytics modules are imported by the commands.

STATE_VARIABLES = ("CDS_DATA_DIR", "CDS_DATABASE_URL", "CDS_RETENTION_DAYS", "CDS_DISMISSAL_DAYS",
                   "CDS_KEEP_USER_COMMENTS")
COLUMNS = ("rule", "week", "issued", "accepted", "overridden", "acceptance_rate", "suppressed", "silent",
           "override_reasons")


def state_settings() -> Settings:
    """The settings of the database alone: authentication and the rest do not matter to these commands."""
    return Settings.from_env({k: v for k, v in os.environ.items() if k in STATE_VARIABLES}, defaults={"auth": "off"})


def rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for entry in report["rules"]:
        for week in entry["weeks"]:
            rate = week["acceptanceRate"]
            out.append({
                "rule": entry["rule"], "week": week["week"], "issued": week["issued"], "accepted": week["accepted"],
                "overridden": week["overridden"], "acceptance_rate": "" if rate is None else f"{rate:.4f}",
                "suppressed": week["suppressed"], "silent": week["silent"],
                "override_reasons": ";".join(f"{code or '(none)'}={n}" for code, n in week["overrideReasons"].items()),
            })
    return out


def render(report: dict[str, Any], fmt: str, *, fancy: bool = False) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2)
    table = rows(report)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
        return buffer.getvalue().rstrip("\n")
    weeks = report["period"]["weeks"]
    title = f"Rule analytics, {weeks[0]} to {weeks[-1]} (knowledge {report['knowledgeVersion']})"
    if not table:
        return f"{title}\nNo cards were recorded in this period."
    if fancy:
        try:
            return _rich_table(title, table)
        except ImportError:  # rich is optional: the plain table says the same
            pass
    widths = {c: max(len(c), *(len(str(r[c])) for r in table)) for c in COLUMNS}
    lines = [title, "  ".join(c.ljust(widths[c]) for c in COLUMNS).rstrip()]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in COLUMNS).rstrip() for r in table]
    return "\n".join(lines)


def _rich_table(title: str, table: list[dict[str, Any]]) -> str:
    from rich.console import Console
    from rich.table import Table

    grid = Table(title=title)
    for column in COLUMNS:
        grid.add_column(column, justify="left" if column in ("rule", "week", "override_reasons") else "right")
    for row in table:
        grid.add_row(*(str(row[c]) for c in COLUMNS))
    console = Console(file=io.StringIO(), width=160)
    console.print(grid)
    return console.file.getvalue().rstrip("\n")


def report_command(args) -> int:
    from .analytics import DEFAULT_WEEKS, MAX_WEEKS, rule_report
    from .operations import open_store

    weeks = DEFAULT_WEEKS if args.weeks is None else args.weeks
    if not 1 <= weeks <= MAX_WEEKS:
        print(f"--weeks must be from 1 to {MAX_WEEKS}", file=sys.stderr)
        return 2
    try:
        store = open_store(state_settings(), upgrade=False)
    except SettingsError as error:
        print(f"calcinosis-cds: {error}", file=sys.stderr)
        return 2
    try:
        if not store.migration_status().at_head:
            print("the database is not at the newest revision: run `calcinosis-cds db upgrade`", file=sys.stderr)
            return 1
        report = rule_report(store, system_clock(), weeks)
    finally:
        store.close()
    print(render(report, args.format, fancy=args.format == "table" and sys.stdout.isatty()))
    return 0


def db_command(args) -> int:
    from .operations import database_url, open_store, safe_url

    try:
        settings = state_settings()
        store = open_store(settings, upgrade=args.action == "upgrade")
    except SettingsError as error:
        print(f"calcinosis-cds: {error}", file=sys.stderr)
        return 2
    try:
        if args.action == "upgrade":
            print(f"{safe_url(database_url(settings))}: at revision {store.migration_status().current}")
            return 0
        if args.action == "current":
            status = store.migration_status()
            print(f"{status.current or 'none'} (head {status.head})")
            return 0 if status.at_head else 1
        now = system_clock()
        counts = store.purge(older_than=now - timedelta(days=settings.retention_days), now=now)
        print(f"purged {counts.cards} cards, {counts.feedback} feedback entries, {counts.dismissals} expired "
              f"dismissals, {counts.replay_entries} expired token ids (retention {settings.retention_days} days)")
        return 0
    finally:
        store.close()


def add_commands(commands) -> None:
    report = commands.add_parser("report", help="print the rule analytics (GET /analytics/rules) from the database")
    report.add_argument("--format", choices=("table", "json", "csv"), default="table",
                        help="table (default, for a reader), json or csv (for a spreadsheet)")
    report.add_argument("--weeks", type=int, help="ISO weeks up to and including this one (default 12)")
    report.set_defaults(run=report_command)

    db = commands.add_parser("db", help="the database: upgrade (migrate), current (revision), purge (retention)")
    db.add_argument("action", choices=("upgrade", "current", "purge"),
                    help="upgrade: migrate to the newest revision; current: show the revision (exit 1 when not the "
                         "newest); purge: delete what is older than CDS_RETENTION_DAYS")
    db.set_defaults(run=db_command)
