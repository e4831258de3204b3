"""Two replicas on one PostgreSQL database, started as production starts them (gunicorn with docker/gunicorn.conf.py,
CDS_AUTH=required, a trust file, the same CDS_DATABASE_URL, CDS_HASH_SECRET and CDS_PUBLIC_URL): nothing a second
replica needs stays in the first (issue 18). A token one accepts the other refuses; a dismissal recorded through one
hides the card on the other; analytics read through either count both; a replica killed mid-load loses no feedback it
acknowledged. Skips without PostgreSQL binaries (tests/postgres.py)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, select

from bench.tokens import Issuer
from cds_service.service.request_builder import request_from_resources, resources_of_bundle
from cds_service.service.storage.schema import FeedbackRecord

from ._processes import free_port, server_process
from .conftest import load_scenario, service_for_hook
from .postgres import postgres_server, postgres_url  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = "https://cds.replicas.invalid"  # what both replicas are behind: the tokens' aud names it, not a replica
ADMIN = "an-admin-token-for-the-replica-test"
PATIENT_VIEW = "calcinosis-cutis-patient-view"
ANTACID = "r05-order-select-mg-antacid-ckd3-sandbox"  # calcinosis and an eGFR of 45: R01, R17 and R20 fire


class Replica:
    def __init__(self, base: str, process, issuer: Issuer):
        self.base, self.process, self.issuer = base, process, issuer
        self.http = requests.Session()

    def post(self, path: str, body: dict, token: str | None = None) -> requests.Response:
        token = token or self.issuer.token(PUBLIC + path)
        return self.http.post(self.base + path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=20)

    def call(self, patient: str) -> dict:
        response = self.post(f"/cds-services/{PATIENT_VIEW}", patient_view(patient))
        assert response.status_code == 200, response.text
        return response.json()

    def feedback(self, card: dict, outcome: str = "overridden") -> requests.Response:
        entry = {"card": card["uuid"], "outcome": outcome,
                 "outcomeTimestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        return self.post(f"/cds-services/{PATIENT_VIEW}/feedback", {"feedback": [entry]})

    def analytics(self) -> dict:
        response = self.http.get(f"{self.base}/analytics/rules?weeks=2", headers={"Authorization": f"Bearer {ADMIN}"},
                                 timeout=20)
        assert response.status_code == 200, response.text
        return {rule["rule"]: rule["totals"] for rule in response.json()["rules"]}


def patient_view(patient: str) -> dict:
    resources = resources_of_bundle(load_scenario(ANTACID, datetime.now(timezone.utc))["bundle"])
    text = json.dumps(resources).replace('"p1"', json.dumps(patient)).replace("Patient/p1", f"Patient/{patient}")
    return {**request_from_resources(service_for_hook("patient-view"), json.loads(text)),
            "hookInstance": str(uuid.uuid4())}


def card_with(response: dict, rule: str) -> dict | None:
    return next((c for c in response["cards"] if rule in c["extension"]["calcinosis-cds"]["rules"]), None)


@pytest.fixture
def replicas(postgres_url, tmp_path):  # noqa: F811
    issuer = Issuer()
    trust = issuer.write_trust_file(tmp_path / "issuers.json")
    env = {name: value for name, value in os.environ.items() if not name.startswith(("CDS_", "PROMETHEUS_", "GUNICORN"))}
    env.update(CDS_AUTH="required", CDS_ISSUERS=str(trust), CDS_PUBLIC_URL=PUBLIC, CDS_DATABASE_URL=postgres_url,
               CDS_HASH_SECRET="a shared patient-hash secret for both", CDS_ADMIN_TOKEN=ADMIN, CDS_LOG_LEVEL="WARNING",
               GUNICORN_WORKERS="2", GUNICORN_THREADS="2", CDS_DATA_DIR=str(tmp_path / "data"))
    command = [str(Path(sys.executable).with_name("gunicorn")), "--config", str(ROOT / "docker" / "gunicorn.conf.py"),
               "cds_service:create_app()"]
    with contextlib.ExitStack() as stack:
        started = []
        for name in ("a", "b"):
            port = free_port()
            process = stack.enter_context(server_process(
                command, f"http://127.0.0.1:{port}/readyz", name=f"replica {name}", timeout=60,
                env={**env, "GUNICORN_BIND": f"127.0.0.1:{port}"}, cwd=ROOT,
                start_new_session=True,  # a process group, killed whole like a container
            ))
            started.append(Replica(f"http://127.0.0.1:{port}", process, issuer))
        yield started, postgres_url


def test_two_replicas_share_replays_dismissals_analytics_and_keep_acknowledged_feedback(replicas):
    (a, b), database = replicas
    token = a.issuer.token(PUBLIC + f"/cds-services/{PATIENT_VIEW}")
    assert a.post(f"/cds-services/{PATIENT_VIEW}", patient_view("replayed"), token).status_code == 200
    assert b.post(f"/cds-services/{PATIENT_VIEW}", patient_view("replayed"), token).status_code == 401
    assert b.post(f"/cds-services/{PATIENT_VIEW}", patient_view("replayed")).status_code == 200  # a fresh one is fine

    # A22 through two replicas: overridden on one, hidden on the other (and for that patient only).
    first = a.call("dismissed")
    for rule in ("R17", "R20", "R01"):
        assert card_with(first, rule) is not None, rule
    assert a.feedback(card_with(first, "R17")).status_code == 200
    assert card_with(b.call("dismissed"), "R17") is None
    assert card_with(b.call("someone-else"), "R17") is not None

    # Analytics read through either replica count the calls and feedback of both.
    totals_a, totals_b = a.analytics(), b.analytics()
    assert totals_a == totals_b
    # R17 issued on "replayed" (a, b), "dismissed" (a), "someone-else" (b); held back once (b); overridden once (a).
    assert (totals_a["R17"]["issued"], totals_a["R17"]["suppressed"], totals_a["R17"]["overridden"]) == (4, 1, 1)

    # A replica killed mid-load: every feedback either answered 200 is stored.
    cards = [card for n in range(16) for card in (a if n % 2 else b).call(f"load-{n}")["cards"]]
    acknowledged, lock, under_way = [], threading.Lock(), threading.Event()

    def send(replica: Replica, mine: list[dict]) -> None:
        for card in mine:
            try:
                status = replica.feedback(card).status_code
            except requests.RequestException:
                continue  # the killed replica: not acknowledged, so nothing is owed
            if status == 200:
                with lock:
                    acknowledged.append(card["uuid"])
                    if len(acknowledged) >= 8:
                        under_way.set()

    senders = [threading.Thread(target=send, args=(replica, cards[i::2])) for i, replica in enumerate((a, b))]
    for sender in senders:
        sender.start()
    assert under_way.wait(timeout=30)
    os.killpg(a.process.pid, signal.SIGKILL)
    for sender in senders:
        sender.join(timeout=60)
    assert len(acknowledged) >= len(cards) // 2, "the surviving replica answered its share"
    assert len(acknowledged) < len(cards), "the replica was killed before it answered everything"
    engine = create_engine(database)
    try:
        with engine.connect() as connection:
            stored = set(connection.scalars(select(FeedbackRecord.card_uuid)))
    finally:
        engine.dispose()
    assert set(acknowledged) <= stored
    overridden = sum(totals["overridden"] for totals in b.analytics().values())
    assert overridden >= len(acknowledged) + 1
