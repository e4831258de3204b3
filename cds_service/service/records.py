"""What the service remembers of each call and each feedback entry, and what that memory holds back.

- Before the cards go out, the engine asks a screen (one per call) which findings to hold back: an info card of R01,
  R17 or R20 that a clinician overrode for this patient in the last CDS_DISMISSAL_DAYS, unless its finding got worse
  (decision A22); at order-sign, a card shown at order-select in the last 24 hours for the same patient, draft order,
  rule and finding, unless its indicator escalated (A21).
- Every card computed is recorded, in one transaction per call: shown, or silent with the reason (the site's silent
  mode, dismissed, repeat). Patients and FHIR servers appear only as keyed hashes (PatientKey).
- Feedback is stored once however often a client retries; feedback on a card this service did not issue to the
  caller is kept and counted as unknown.

A database that fails never costs the clinician a card: the screen then holds nothing back, and a failed recording
is logged and counted (GET /readyz tells the orchestrator); only feedback answers 503, so that the client retries.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy.exc import SQLAlchemyError

from cds_service.engine.card_model import Card
from cds_service.engine.evaluate import EXTENSION_KEY, Evaluation
from cds_service.engine.screening import Candidate, CardKeys, Screen

from . import metrics
from .errors import BadRequest
from .protocol import HookRequest
from .site_settings import Site
from .storage import INDICATOR_RANK, CardRecord, FeedbackEntry, Finding, PatientKey, ShownKey, Store

log = logging.getLogger("cds_service.records")

REPEAT_WINDOW = timedelta(hours=24)  # A21: "not repeated at order-sign within 24 hours"
DISMISSED, REPEAT, SILENT_MODE = "dismissed", "repeat", "silent-mode"


class StoreUnavailable(Exception):
    """The database did not take what had to be kept (feedback): the client should retry."""


class Recorder:
    def __init__(self, store: Store, keys: PatientKey, knowledge_version: str):
        self.store = store
        self.keys = keys
        self.knowledge_version = knowledge_version

    def _patient(self, request: HookRequest) -> tuple[str, str]:
        server = request.fhir_server or ""
        return self.keys.patient(server, request.patient_id), self.keys.server(server)

    # --- A21, A22 ---------------------------------------------------------------------------------------------

    def screen(self, request: HookRequest, now: datetime) -> Screen:
        patient, _ = self._patient(request)

        def judge(candidates: Sequence[Candidate]) -> Mapping[Candidate, str]:
            try:
                return self._verdicts(patient, request.hook, candidates, now)
            except SQLAlchemyError as error:
                log.warning("dismissals and earlier cards unavailable; nothing held back",
                            extra={"error": type(error).__name__})
                return {}

        return judge

    def _verdicts(self, patient: str, hook: str, candidates: Sequence[Candidate], now: datetime) -> dict[Candidate, str]:
        verdicts: dict[Candidate, str] = {}
        dismissible = [c for c in candidates if c.indicator == "info" and c.rule_id in self.store.dismissible_rules]
        if dismissible:
            active = self.store.active_dismissals(patient, now)
            for candidate in dismissible:
                finding = Finding(candidate.rule_id, candidate.finding.key, candidate.finding.rank)
                if any(d.hides(finding) for d in active):
                    verdicts[candidate] = DISMISSED
        if hook == "order-sign":
            # The draft's key as stored: keyed with the secret (product, dose and route are few and guessable).
            keyed = {ShownKey(self.keys.card(c.draft_key), c.rule_id, c.finding.key): c
                     for c in candidates if c.draft_key and c not in verdicts}
            shown = self.store.shown_at_order_select(patient, keyed, since=now - REPEAT_WINDOW)
            for key, indicator in shown.items():
                candidate = keyed[key]
                if INDICATOR_RANK[candidate.indicator] <= INDICATOR_RANK[indicator]:  # an escalation shows again
                    verdicts[candidate] = REPEAT
        return verdicts

    # --- cards ------------------------------------------------------------------------------------------------

    def record_call(self, *, service_id: str, request: HookRequest, evaluation: Evaluation, site: Site,
                    issuer: str | None, tenant: str | None, now: datetime) -> None:
        patient, server = self._patient(request)
        shown = [(card, SILENT_MODE if site.silent else None) for card in evaluation.cards]
        held = [(card, evaluation.keys[card.uuid].held_back) for card in evaluation.held_back]
        records = [
            self._record(card, evaluation.keys[card.uuid], why, service_id=service_id, hook=request.hook,
                         patient=patient, server=server, issuer=issuer, tenant=tenant, now=now)
            for card, why in shown + held
        ]
        metrics.count_cards((list(dict.fromkeys(f.rule_id for f in r.findings)), r.indicator, r.held_back or "shown")
                            for r in records)
        try:
            self.store.record_cards(records)
        except SQLAlchemyError as error:
            log.error("cards not recorded", extra={"error": type(error).__name__, "cards": len(records)})

    def _record(self, card: Card, keys: CardKeys, held_back: str | None, *, service_id: str, hook: str,
                patient: str, server: str, issuer: str | None, tenant: str | None, now: datetime) -> CardRecord:
        extension: Mapping[str, Any] = card.extension[EXTENSION_KEY]
        return CardRecord(
            uuid=card.uuid,
            service_id=service_id,
            hook=hook,
            # The card's stable key (A20), keyed: the EHR's key may name a product ordered for this patient.
            stable_key=self.keys.card(str(extension["key"])),
            indicator=card.indicator,
            knowledge_version=self.knowledge_version,
            issued_at=now,
            patient_hash=patient,
            fhir_server_hash=server,
            findings=tuple(Finding(rule_id, f.key, f.rank) for rule_id, f in keys.findings),
            issuer=issuer,
            tenant=tenant,
            silent=held_back is not None,
            draft_order_key=self.keys.card(keys.draft_key) if keys.draft_key else None,
            suggestion_uuids=tuple(s.uuid for s in card.suggestions),
            held_back=held_back,
        )

    # --- feedback ---------------------------------------------------------------------------------------------

    def record_feedback(self, service_id: str, entries: Iterable[dict], *, issuer: str | None, tenant: str | None,
                        client_key: str | None, now: datetime) -> list[dict]:
        """Store each entry (once); what was stored, for the log. StoreUnavailable when the database fails."""
        parsed = []
        for index, raw in enumerate(entries):
            try:
                parsed.append(FeedbackEntry.from_cds_hooks(
                    service_id, raw, issuer=issuer, tenant=tenant,
                    # One request may carry several entries: the client's key names the request, the index the entry.
                    client_key=f"{client_key}#{index}" if client_key else None,
                ))
            except ValueError as error:  # all are checked before any is stored
                raise BadRequest(f"feedback[{index}]: {error}") from None
        summary = []
        for entry in parsed:
            try:
                result = self.store.record_feedback(entry, now)
            except SQLAlchemyError as error:
                log.error("feedback not stored", extra={"error": type(error).__name__})
                raise StoreUnavailable("feedback could not be stored; retry later") from None
            card = "retry" if not result.stored else "known" if result.known_card else "unknown"
            metrics.count_feedback(entry.outcome, card)
            summary.append({"card": entry.card_uuid, "outcome": entry.outcome, "cardKnown": result.known_card,
                            "stored": result.stored, "overrideReason": entry.override_code})
        return summary
