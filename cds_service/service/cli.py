"""The `calcinosis-cds` command.

  calcinosis-cds serve [--host H] [--port P] [--workers N]   run the service (gunicorn), development defaults
  calcinosis-cds evaluate FILE [--at DATE] [--hook HOOK]      print the CDS Hooks response for one record
  calcinosis-cds request FILE [--at DATE] [--hook HOOK]       print the CDS Hooks request built from FILE (for curl)
  calcinosis-cds rules [--format text|markdown|json]          print the catalogue of rules, generated from cards/
  calcinosis-cds report [--format table|json|csv] [--weeks N] print the rule analytics from the database
  calcinosis-cds db upgrade|current|purge                     migrate, show the revision, apply the retention

FILE for `evaluate` is a CDS Hooks request, a FHIR Bundle of one patient (e.g. a Synthea record), or a fixture
scenario ({"bundle": ..., "hook": ..., "draftOrders": ...}). `${now-30d}`-style dates in it are resolved against
--at (default: now), as are the look-back windows of the rules.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import relative_dates
from .clock import fixed_clock
from .errors import ServiceError
from .settings import Settings, SettingsError, development_defaults


def _parse_at(value: str | None) -> datetime:
    if not value:
        return datetime.now(timezone.utc)
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SystemExit(f"--at must be an ISO date or date-time, not {value!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _service_for_hook(hook: str):
    from .discovery import services

    for service in services().values():
        if service.hook == hook:
            return service
    raise SystemExit(f"no service answers the hook {hook!r}")


def build_request(document: dict[str, Any], hook: str | None, at: datetime) -> tuple[Any, dict[str, Any]]:
    """(service, request body) from a CDS Hooks request, a FHIR Bundle or a fixture scenario."""
    from .request_builder import request_from_resources, resources_of_bundle

    document = relative_dates.resolve(document, at)
    if "hookInstance" in document and "hook" in document:
        service = _service_for_hook(hook or document["hook"])
        return service, document
    if document.get("resourceType") == "Bundle":
        service = _service_for_hook(hook or "patient-view")
        return service, request_from_resources(service, resources_of_bundle(document))
    if isinstance(document.get("bundle"), dict):
        service = _service_for_hook(hook or document.get("hook", "patient-view"))
        drafts = resources_of_bundle(document["draftOrders"]) if isinstance(document.get("draftOrders"), dict) else None
        return service, request_from_resources(
            service, resources_of_bundle(document["bundle"]), draft_orders=drafts, selections=document.get("selections")
        )
    raise SystemExit("FILE must be a CDS Hooks request, a FHIR Bundle of one patient, or a fixture scenario")


def evaluate_command(args: argparse.Namespace) -> int:
    from .logging_setup import configure_logging
    from .service_call import handle

    at = _parse_at(args.at)
    try:
        document = json.loads(Path(args.file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        print(f"cannot read {args.file}: {error}", file=sys.stderr)
        return 2
    try:
        service, body = build_request(document, args.hook, at)
    except ValueError as error:
        print(str(error), file=sys.stderr)
        return 2
    settings = Settings(auth="off", fhir_allow_http=True, log_format="text", log_level="WARNING")
    configure_logging(settings.log_format, settings.log_level)
    try:
        result = handle(service, body, settings=settings, clock=fixed_clock(at), fetcher=None)
    except ServiceError as error:
        print(json.dumps({"status": error.status, "error": error.message, "details": error.details}, indent=2))
        return 1
    print(json.dumps(result.response, indent=2))
    return 0


def request_command(args: argparse.Namespace) -> int:
    try:
        document = json.loads(Path(args.file).read_text(encoding="utf-8"))
        _, body = build_request(document, args.hook, _parse_at(args.at))
    except (OSError, ValueError) as error:
        print(f"cannot build a request from {args.file}: {error}", file=sys.stderr)
        return 2
    print(json.dumps(body, indent=2))
    return 0


def rules_command(args: argparse.Namespace) -> int:
    from .catalogue import catalogue_document, render_catalogue

    if args.output:
        Path(args.output).write_text(catalogue_document(), encoding="utf-8")
        return 0
    print(render_catalogue(args.format))
    return 0


def serve_command(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    # Before anything imports prometheus-client: its multiprocess mode is chosen when it is first imported.
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or _own_metrics_dir()

    from .app import create_app
    from .gunicorn_hooks import child_exit, pre_fork
    from .metrics import prepare_multiprocess_dir

    prepare_multiprocess_dir(metrics_dir)

    try:
        settings = Settings.from_env(defaults=development_defaults())
        app = create_app(settings)
    except SettingsError as error:
        print(f"calcinosis-cds: invalid settings: {error}", file=sys.stderr)
        return 2

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("threads", args.threads)
            self.cfg.set("timeout", 30)
            self.cfg.set("graceful_timeout", 10)
            self.cfg.set("accesslog", None)
            self.cfg.set("pre_fork", pre_fork)
            self.cfg.set("child_exit", child_exit)

        def load(self):
            return app

    print(f"calcinosis-cds: serving on http://{args.host}:{args.port}/cds-services (auth {settings.auth})", flush=True)
    Server().run()
    return 0


def _own_metrics_dir() -> str:
    import atexit
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="calcinosis-cds-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="calcinosis-cds", description="CDS Hooks service for calcinosis cutis")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service with development defaults (see README)")
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--threads", type=int, default=4)
    serve.set_defaults(run=serve_command)

    evaluate = commands.add_parser("evaluate", help="print the cards for one record, without an EHR")
    evaluate.add_argument("file", help="a CDS Hooks request, a FHIR Bundle of one patient, or a fixture scenario")
    evaluate.add_argument("--at", help="evaluation time (ISO date or date-time); default now")
    evaluate.add_argument("--hook", choices=("patient-view", "order-select", "order-sign"))
    evaluate.set_defaults(run=evaluate_command)

    build = commands.add_parser("request", help="print the CDS Hooks request for a record, to send with curl")
    build.add_argument("file", help="a FHIR Bundle of one patient, or a fixture scenario")
    build.add_argument("--at", help="time the record's relative dates are resolved against; default now")
    build.add_argument("--hook", choices=("patient-view", "order-select", "order-sign"))
    build.set_defaults(run=request_command)

    rules = commands.add_parser("rules", help="print the catalogue of rules")
    rules.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    rules.add_argument("--output", help="write the Markdown catalogue document (docs/rules.md) to this file")
    rules.set_defaults(run=rules_command)

    from .report import add_commands

    add_commands(commands)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
