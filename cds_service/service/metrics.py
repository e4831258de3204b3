"""Prometheus metrics at GET /metrics: calls, latency, cards, feedback, FHIR fetches, authentication failures.

Under gunicorn each worker is a process of its own, so the metrics use prometheus-client's multiprocess mode: with
PROMETHEUS_MULTIPROC_DIR set before this module is first imported, every process writes its values to files there
and /metrics adds them up (MultiProcessCollector); a worker that exits is marked dead by the child_exit hook
(gunicorn_hooks.py). Without the variable (tests, `calcinosis-cds evaluate`) the process's own registry is served.

Labels hold ids and outcomes only (service ids, rule ids, indicators, reasons from a fixed list), never patient data,
so their number stays small.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from .discovery import services
from .prefetch import KeyResult

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

CALLS = Counter("cds_calls", "CDS Hooks requests answered, by service and HTTP status", ["service", "status"])
LATENCY = Histogram(
    "cds_call_duration_seconds",
    "Time to answer a CDS Hooks request (service call, feedback, discovery)",
    ["service"],
    # CDS clients give up after a few seconds; most calls take a few milliseconds.
    buckets=(0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CARDS = Counter(
    "cds_cards",
    "Cards computed, by rule and indicator; delivery says whether they were shown, or held back and why",
    ["rule", "indicator", "delivery"],
)
FEEDBACK = Counter(
    "cds_feedback",
    "Feedback entries received, by outcome; card is known, unknown (not issued to this caller) or retry (already stored)",
    ["outcome", "card"],
)
FHIR_FETCHES = Counter(
    "cds_fhir_fetches", "Prefetch keys fetched from the EHR's FHIR server, by outcome (ok, error)", ["outcome"]
)
AUTH_FAILURES = Counter("cds_auth_failures", "Requests refused as unauthenticated, by reason", ["reason"])

blueprint = Blueprint("metrics", __name__)


def multiprocess_dir() -> str | None:
    """The directory of the metrics files, when prometheus-client runs in multiprocess mode. The mode is what it chose
    when first imported: a variable set later (a test, a library) must not make /metrics read files nobody writes."""
    if values.ValueClass is values.MutexValue:
        return None
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess_dir(path: str | Path) -> None:
    """An empty directory for a new server's metric files (files of an earlier run would be added up too)."""
    path = Path(path)
    if path.exists():
        for child in path.glob("*.db"):
            child.unlink()
    else:
        path.mkdir(mode=0o700, parents=True)


def mark_process_dead(pid: int) -> None:
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)


@blueprint.get("/metrics")
def metrics() -> Response:
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def observe_call(service: str, status: int, seconds: float) -> None:
    CALLS.labels(service, str(status)).inc()
    LATENCY.labels(service).observe(seconds)


def count_cards(cards: Iterable[tuple[list[str], str, str]]) -> None:
    """(rule ids, indicator, delivery) of each card."""
    for rules, indicator, delivery in cards:
        for rule in rules:
            CARDS.labels(rule, indicator, delivery).inc()


def count_feedback(outcome: str, card: str) -> None:
    FEEDBACK.labels(outcome, card).inc()


def count_auth_failure(reason: str) -> None:
    AUTH_FAILURES.labels(reason).inc()


def _count_fetched(results: dict[str, KeyResult] | KeyResult) -> None:
    for result in results.values() if isinstance(results, dict) else [results]:
        FHIR_FETCHES.labels("error" if result.error else "ok").inc()


class MeteredFetcher:
    """The fetcher the service uses, counting what each fetch yields; anything else passes through."""

    def __init__(self, inner: Any):
        self._inner = inner

    def fetch(self, request, queries, continuations):
        results = self._inner.fetch(request, queries, continuations)
        _count_fetched(results)
        return results

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name != "fetch_medications":
            return attribute

        def fetch_medications(request, references):
            result = attribute(request, references)
            _count_fetched(result)
            return result

        return fetch_medications


def observe_request(request, response, seconds: float) -> None:
    """A CDS Hooks request's metrics: the service id only when it is one of ours (a path is caller text)."""
    service_id = (request.view_args or {}).get("service_id")
    if request.path.rstrip("/") == "/cds-services":
        service = "discovery"
    elif isinstance(service_id, str) and service_id in services():
        service = service_id + ("/feedback" if request.path.endswith("/feedback") else "")
    else:
        service = "unknown"
    observe_call(service, response.status_code, seconds)
