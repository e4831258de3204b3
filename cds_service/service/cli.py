"""The `calcinosis-cds` command.

  calcinosis-cds serve [--host H] [--port P] [--workers N]   run the service (gunicorn), development defaults
  calcinosis-cds evaluate FILE [--at DATE] [--hook HOOK] [--format json|text]
                                                              print the CDS Hooks response (or its cards, as text)
  calcinosis-cds request FILE [--at DATE] [--hook HOOK]       print the CDS Hooks request built from FILE (for curl)
  calcinosis-cds rules [--format text|markdown|json]          print the catalogue of rules, generated from cards/
  calcinosis-cds report [--format table|json|csv] [--weeks N] print the rule analytics from the database
  calcinosis-cds db upgrade|current|purge                     migrate, show the revision, apply the retention

FILE for `evaluate` is a CDS Hooks request, a FHIR Bundle of one patient (e.g. a Synthea record), or a fixture
scenario ({"bundle": ..., "hook": ..., "draftOrders": ...}). `${now-30d}`-style dates in it are resolved against
--at (default: now), as are the look-back windows of the rules.

Exit codes: 0 done; 1 `evaluate` ran and the service refused the request (its JSON answer is printed); 2 bad input
(an option, a file that cannot be read, is not JSON or not one of the shapes above, invalid settings), with one line
on stderr; 141 stdout was closed early (e.g. `| head`), without a traceback.
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

# gunicorn's limits on what precedes a body (400/431 past them): CDS Hooks paths are short, a caller sends a
# handful of headers, and the longest is Authorization with a JWT of at most 16 KiB (security.MAX_TOKEN_CHARS).
REQUEST_LIMITS = {"limit_request_line": 2048, "limit_request_fields": 50, "limit_request_field_size": 16 * 1024 + 512}


class BadInput(ValueError):
    """Input the command cannot use: one line on stderr, exit code 2."""


DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"  # `calcinosis-cds serve` with its default host and port


def _parse_at(value: str | None) -> datetime:
    if not value:
        return datetime.now(timezone.utc)
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"--at must be an ISO date or date-time, not {value!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _service_for_hook(hook: Any):
    from .discovery import services

    for service in services().values():
        if service.hook == hook:
            return service
    raise BadInput(f"no service answers the hook {str(hook)[:80]!r}")


def _read_document(path: str) -> dict[str, Any]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise BadInput(f"cannot read {path}: {error.strerror or error}") from None
    except ValueError as error:  # not UTF-8, or not JSON
        raise BadInput(f"{path} is not a JSON file: {str(error)[:200]}") from None
    if not isinstance(document, dict):
        raise BadInput(f"{path} holds a JSON {type(document).__name__}, not an object: "
                       "a CDS Hooks request, a FHIR Bundle or a fixture scenario")
    return document


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
    raise BadInput("FILE must be a CDS Hooks request, a FHIR Bundle of one patient, or a fixture scenario")


def cli_rule_page_base() -> str:
    """The cards' rule-page links without a request: CDS_PUBLIC_URL, else the address `serve` uses by default."""
    return (os.environ.get("CDS_PUBLIC_URL") or "").strip().rstrip("/") or DEFAULT_PUBLIC_URL


def evaluate_command(args: argparse.Namespace) -> int:
    from .logging_setup import configure_logging
    from .service_call import handle

    at = _parse_at(args.at)
    service, body = build_request(_read_document(args.file), args.hook, at)
    settings = Settings(auth="off", fhir_allow_http=True, log_format="text", log_level="WARNING")
    configure_logging(settings.log_format, settings.log_level)
    try:
        result = handle(service, body, settings=settings, clock=fixed_clock(at), fetcher=None,
                        rule_page_base=cli_rule_page_base())
    except ServiceError as error:
        print(json.dumps({"status": error.status, "error": error.message, "details": error.details}, indent=2))
        return 1
    if args.format == "text":
        from .text_view import print_cards

        print_cards(result.response)
        return 0
    print(json.dumps(result.response, indent=2))
    return 0


def request_command(args: argparse.Namespace) -> int:
    _, body = build_request(_read_document(args.file), args.hook, _parse_at(args.at))
    print(json.dumps(body, indent=2))
    return 0


def rules_command(args: argparse.Namespace) -> int:
    from .catalogue import catalogue_document, render_catalogue

    if args.output:
        try:
            Path(args.output).write_text(catalogue_document(), encoding="utf-8")
        except OSError as error:
            raise BadInput(f"cannot write {args.output}: {error.strerror or error}") from None
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
            # gthread, safe against slow clients (request heads gathered without a thread, a time bound per
            # request), and gunicorn's limits on the request line and headers (docker/gunicorn.conf.py alike).
            self.cfg.set("worker_class", "cds_service.service.gunicorn_hooks.ThreadWorker")
            for name, value in REQUEST_LIMITS.items():
                self.cfg.set(name, value)
            self.cfg.set("timeout", getattr(args, "timeout", 30))
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


def _positive(kind: type):
    def parse(raw: str):
        try:
            value = kind(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, not {raw!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, not {raw!r}")
        return value

    return parse


def _port(raw: str) -> int:
    value = _positive(int)(raw)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number (1-65535), not {raw!r}")
    return value


def _default_port() -> int | str:
    raw = os.environ.get("PORT", "8080")
    return int(raw) if raw.strip().isdigit() else raw  # a bad PORT is reported by argparse, as --port would be


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("calcinosis-cds")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


HOOKS = ("patient-view", "order-select", "order-sign")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="calcinosis-cds", description="CDS Hooks service for calcinosis cutis",
                                  epilog="Exit codes: 0 done, 1 the service refused the request (evaluate) or the "
                                         "database is not at the newest revision (report, db current), 2 bad input.")
    top.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the service with development defaults (see README)",
                                description="Run the service under gunicorn with development defaults; CDS_* "
                                            "environment variables override them (README, Configuration).")
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"),
                       help="address to listen on (default: $HOST, else 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=_default_port(),
                       help="port to listen on (default: $PORT, else 8080)")
    serve.add_argument("--workers", type=_positive(int), default=1, help="worker processes (default: 1)")
    serve.add_argument("--threads", type=_positive(int), default=4, help="threads per worker (default: 4)")
    serve.add_argument("--timeout", type=_positive(int), default=30,
                       help="seconds a request may take once a thread serves it; then its connection is shut down "
                            "(default: 30)")
    serve.set_defaults(run=serve_command)

    evaluate = commands.add_parser("evaluate", help="print the cards for one record, without an EHR",
                                   description="Print the CDS Hooks response the service gives for one record.")
    evaluate.add_argument("file", help="a CDS Hooks request, a FHIR Bundle of one patient, or a fixture scenario")
    evaluate.add_argument("--at", help="evaluation time (ISO date or date-time); default now")
    evaluate.add_argument("--hook", choices=HOOKS, help="hook to call (default: the request's, else patient-view)")
    evaluate.add_argument("--format", choices=("json", "text"), default="json",
                          help="json (default, for scripts) or text: the cards rendered for a reader")
    evaluate.set_defaults(run=evaluate_command)

    build = commands.add_parser("request", help="print the CDS Hooks request for a record, to send with curl",
                                description="Print the CDS Hooks request body built from a record.")
    build.add_argument("file", help="a FHIR Bundle of one patient, or a fixture scenario")
    build.add_argument("--at", help="time the record's relative dates are resolved against; default now")
    build.add_argument("--hook", choices=HOOKS, help="hook of the request (default: the scenario's, else patient-view)")
    build.set_defaults(run=request_command)

    rules = commands.add_parser("rules", help="print the catalogue of rules",
                                description="Print the catalogue of rules, generated from cards/.")
    rules.add_argument("--format", choices=("text", "markdown", "json"), default="text",
                       help="output format (default: text)")
    rules.add_argument("--output", help="write the Markdown catalogue document (docs/rules.md) to this file")
    rules.set_defaults(run=rules_command)

    from .report import add_commands  # report and db: the operated service's commands (report.py)

    add_commands(commands)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)  # a bad option: argparse's usage line, exit code 2
    try:
        return args.run(args)
    except BadInput as error:
        print(f"calcinosis-cds: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`| head`): nothing more to say, and Python must not print a traceback when it
        # flushes stdout at exit either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
