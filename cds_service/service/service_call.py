"""One service call, from request body to CDS Hooks response; shared by the HTTP route and `calcinosis-cds evaluate`.

request body -> HookRequest (protocol) -> patient record (prefetch, fetching what is absent) -> validated resources
-> patient facts (with the hook's draft orders) -> cards (engine) -> response with a report of what was skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from functools import lru_cache
from typing import Any, Callable

import cards
from cds_service.engine.evaluate import Evaluation, evaluate
from cds_service.engine.rules import Context, RuleSettings
from cds_service.engine.screening import Screen
from cds_service.record.draft_orders import read_draft_orders
from cds_service.record.facts import build_facts
from cds_service.record.labs import lab_windows
from cds_service.record.request_scan import parse_call_body
from cds_service.record.selection import ObservationRoles, select_and_validate

from .clock import Clock
from .discovery import Service, services
from .errors import BadRequest, NotFound
from .outbound import AllowedServers
from .prefetch import Fetcher, KeyResult, gather
from .protocol import HookRequest, parse_hook_request
from .settings import Settings


@dataclass
class CallResult:
    request: HookRequest
    evaluation: Evaluation
    response: dict[str, Any]
    summary: dict[str, Any]  # what the call's log line says of it: rule ids and counts, no patient data


def find_service(service_id: str) -> Service:
    service = services().get(service_id)
    if service is None:
        raise NotFound(f"no CDS service with id {service_id!r}; see GET /cds-services")
    return service


def rule_settings(settings: Settings) -> RuleSettings:
    """The service's settings that rules read."""
    return RuleSettings(low_dose_warfarin_mg_per_day=settings.low_dose_warfarin_mg_per_day)


# What a body that is not JSON gets (400), whether the HTTP layer or the call parses it.
INVALID_JSON = "the request body is not valid JSON, or is nested too deeply to read"

NOT_ALLOWED = ("not fetched: the fhirServer is not one this service may fetch from for this caller "
               "(fhir_servers in the issuers file, or CDS_FHIR_SERVERS)")


class _Refused:
    """The fetcher of a call whose fhirServer the caller may not have fetched from: every key is an error."""

    def fetch(self, request, queries, continuations):
        return {key: KeyResult(error=NOT_ALLOWED, source="fetched") for key in [*queries, *continuations]}

    def fetch_medications(self, request, references):
        return KeyResult(error=NOT_ALLOWED + ": " + ", ".join(references), source="fetched")


@lru_cache(maxsize=64)
def allowed_servers(entries: tuple[str, ...]) -> AllowedServers:
    """The parsed list (settings and the issuers file were checked at start-up: this cannot fail)."""
    return AllowedServers(entries, where="FHIR servers")


def fetch_access(request: HookRequest, fetcher: Fetcher | None, servers: tuple[str, ...]):
    """(request, fetcher) for the FHIR servers this caller may fetch from: a refusing fetcher for any other
    fhirServer, and the request marked when its fhirServer is listed by URL (it may then be a private address)."""
    if fetcher is None or not request.fhir_server:
        return request, fetcher
    decision = allowed_servers(tuple(servers)).decide(request.fhir_server)
    if decision is None:
        return request, _Refused()
    return replace(request, fhir_server_listed=decision == AllowedServers.LISTED), fetcher


def draft_order_facts(request: HookRequest, record_medications: list[dict]):
    """The draft orders of an order hook, read leniently; none on patient-view."""
    if request.hook not in ("order-select", "order-sign"):
        return []
    return read_draft_orders(request.context["draftOrders"], record_medications)


def handle(
    service: Service,
    body: Any,
    *,
    settings: Settings,
    clock: Clock,
    fetcher: Fetcher | None = None,
    fhir_servers: tuple[str, ...] | None = None,
    rule_page_base: str | None = None,
    screen_for: Callable[[HookRequest], Screen] | None = None,
    switched_off: frozenset[str] = frozenset(),
) -> CallResult:
    """Answer one service call; `body` parsed, or the request body's bytes (read by record/request_scan.py).
    `rule_page_base` is where the service's rule pages are (CDS_PUBLIC_URL, else the request's own base URL): every
    card links to its rule's page there (decision A20).
    `fhir_servers`: what this caller may fetch from (its issuer's list); None: CDS_FHIR_SERVERS."""
    knowledge = cards.knowledge()
    terms = knowledge.terminology
    now = clock()
    roles = ObservationRoles(terms, lab_windows(terms, now))  # one for the body's scan and the selection, at `now`
    classified = None
    if isinstance(body, bytes):
        # The body as it came: read without building the Observations no rule can read (record/request_scan.py).
        try:
            body, classified = parse_call_body(body, terms.read_loinc_codes, roles, keys=service.prefetch)
        except (ValueError, RecursionError):
            raise BadRequest(INVALID_JSON) from None
    request = parse_hook_request(body, expected_hook=service.hook, allow_http_fhir_server=settings.fhir_allow_http)
    request, fetcher = fetch_access(request, fetcher, settings.fhir_servers if fhir_servers is None else fhir_servers)
    record = gather(request, service.prefetch, set(service.required), fetcher, observation_codes=terms.read_loinc_codes,
                    classified=classified)
    procedures_since = (now - timedelta(days=knowledge.procedure_window_days)
                        if knowledge.procedure_window_days is not None else None)
    selected = select_and_validate(record.resources, request.patient_id, terms, now=now, procedures_since=procedures_since,
                                   observation_codes=record.observation_codes, roles=roles)
    facts = build_facts(
        selected,
        patient_id=request.patient_id,
        now=now,
        terms=terms,
        draft_orders=draft_order_facts(request, selected.of("Medication")),
        # Every key whose data is missing or incomplete (a required key cut short by a page cap included):
        # rules that reason from absence must not read "not obtained" as "none on file".
        missing_keys=[key for key, result in record.keys.items() if result.error],
    )
    ctx = Context(hook=request.hook, hook_context=request.context, settings=rule_settings(settings),
                  rule_page_base=rule_page_base)
    evaluation = evaluate(facts, ctx, knowledge, switched_off=switched_off,
                          screen=screen_for(request) if screen_for is not None else None)

    response: dict[str, Any] = {"cards": [card.to_json() for card in evaluation.cards]}
    report: dict[str, Any] = {}
    problems = record.problems()
    if problems:
        # Missing optional keys, and required keys obtained only in part (a page cap, a failed later page).
        report["missingData"] = problems
    skipped = selected.skipped + facts.invalid_resources()  # Conditions and labs are validated when read
    if skipped:
        report["skippedResources"] = skipped
    if facts.labs.unusable:
        report["unusedLabResults"] = facts.labs.unusable
    if evaluation.failed_rules:
        report["failedRules"] = evaluation.failed_rules
    if report:
        response["extension"] = {"calcinosis-cds": report}
    # Ids and counts only; the HTTP layer logs them on the call's one `request` line (docs/security.md, Logs).
    # `rules` are the rules on the cards; `folded` those that fired with no card of their own (a withheld option
    # noted on another card, a card whose suggestions another card already offers).
    summary = {"rules": evaluation.on_cards, "folded": evaluation.folded, "cards": len(evaluation.cards),
               "skipped": len(skipped), "missing": record.missing_optional}
    return CallResult(request=request, evaluation=evaluation, response=response, summary=summary)
