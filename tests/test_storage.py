"""The storage layer, run the same on an SQLite file and on a real PostgreSQL server (tests/postgres.py).

All times are fixed instants passed in (the store never reads the clock), so these tests mean the same any day.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cds_service.service.storage import (
    CardRecord,
    FeedbackEntry,
    Finding,
    PatientKey,
    ReplayVerdict,
    ShownKey,
    Store,
    at_head,
    current_revision,
    head_revision,
    make_engine,
    normalise_url,
    sqlite_url,
    upgrade,
)
from cds_service.service.storage.migrate import migration_lock
from cds_service.service.storage.records import iso_week
from cds_service.service.storage.schema import Base, CardFinding, Dismissal, FeedbackRecord, IssuedCard, ReplayEntry

from .postgres import postgres_server, postgres_url  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 3, 9, 10, 0, tzinfo=timezone.utc)  # a Monday: ISO week 2026-W11
KEY = PatientKey("a test secret of more than sixteen bytes")
SERVER = "https://ehr.example.org/fhir"
PATIENT = KEY.patient(SERVER, "patient-1")
OTHER_PATIENT = KEY.patient(SERVER, "patient-2")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cds.sqlite3'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(db_url):
    store = Store(db_url)
    store.upgrade()
    yield store
    store.close()


def card(uuid: str, *findings: Finding, indicator="info", hook="patient-view", at=T0, patient=PATIENT, **more):
    return CardRecord(
        uuid=uuid, service_id=f"calcinosis-cutis-{hook}", hook=hook, stable_key=f"{findings[0].rule_id}:key",
        indicator=indicator, knowledge_version="2026.03", issued_at=at, patient_hash=patient,
        fhir_server_hash=KEY.server(SERVER), findings=tuple(findings), **more,
    )


def feedback(uuid: str, outcome="overridden", at=T0, **more) -> FeedbackEntry:
    return FeedbackEntry(service_id="calcinosis-cutis-patient-view", card_uuid=uuid, outcome=outcome,
                         outcome_at=at, **more)


# --- migrations ----------------------------------------------------------------------------------------------


def test_migrations_reach_head_and_match_the_models(db_url):
    assert current_revision(db_url) is None and not at_head(db_url)
    assert upgrade(db_url) == head_revision()
    assert at_head(db_url) and current_revision(db_url) == head_revision()
    assert upgrade(db_url) == head_revision()  # again: nothing to do
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
    store = Store(db_url)
    assert store.ping() and store.migration_status().at_head
    store.close()


def test_a_store_on_an_unreachable_database_is_not_ready():
    store = Store("postgresql://nobody:wrong@127.0.0.1:1/none", connect_args={"connect_timeout": 2})
    assert store.ping() is False
    store.close()


def test_two_processes_upgrading_one_fresh_database_both_succeed(db_url):
    """Both are started while the migration lock is held, so both find the database behind and must wait: the
    lock, not luck, keeps them apart. Released, one migrates, the other finds the work done."""
    engine = make_engine(db_url)
    env = {**os.environ, "CDS_DATABASE_URL": db_url}
    command = [sys.executable, "-m", "cds_service.service.storage", "upgrade"]
    waiting: queue.Queue[int] = queue.Queue()
    outputs: list[list[str]] = [[], []]

    def read(process: subprocess.Popen, index: int) -> None:
        for line in process.stderr:
            outputs[index].append(line)
            if "migration lock held by another process; waiting" in line:
                waiting.put(index)

    processes = []
    try:
        with migration_lock(engine):
            for index in range(2):
                process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True)
                processes.append(process)
                threading.Thread(target=read, args=(process, index), daemon=True).start()
            try:
                assert {waiting.get(timeout=60), waiting.get(timeout=60)} == {0, 1}, outputs
            except queue.Empty:
                pytest.fail(f"an upgrade did not wait for the migration lock: {outputs}")
        for process in processes:
            assert process.wait(timeout=60) == 0, outputs
            assert process.stdout.read().strip() == head_revision()
        assert at_head(db_url)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
        # One process ran the revisions; the other found them done.
        assert sum(any("Running upgrade" in line for line in lines) for lines in outputs) == 1, outputs
    finally:
        for process in processes:
            process.kill()
            process.wait()
        engine.dispose()


# --- cards -----------------------------------------------------------------------------------------------------


def test_cards_are_recorded_and_read_back(store):
    paris = timezone(timedelta(hours=1))
    cards = [
        card("c-1", Finding("R17", "nephrology", 2), Finding("R17", "rheumatology", 1),
             suggestion_uuids=("s-1", "s-2"), issuer="https://ehr.example.org", tenant="t1"),
        card("c-2", Finding("R05", "aluminium", 1), indicator="warning", hook="order-select",
             at=datetime(2026, 3, 9, 12, 0, tzinfo=paris), draft_order_key="rx:123|500 mg|oral", silent=True),
    ]
    store.record_cards(cards)
    with Session(store.engine) as session:
        first, second = session.scalars(select(IssuedCard).order_by(IssuedCard.uuid)).all()
        assert (first.service_id, first.hook, first.indicator, first.knowledge_version, first.stable_key) == (
            "calcinosis-cutis-patient-view", "patient-view", "info", "2026.03", "R17:key")
        assert (first.issuer, first.tenant, first.silent, first.draft_order_key) == (
            "https://ehr.example.org", "t1", False, None)
        assert first.suggestion_uuids == ["s-1", "s-2"]
        assert (first.patient_hash, first.fhir_server_hash) == (PATIENT, KEY.server(SERVER))
        assert first.issued_at == T0 and first.issued_at.tzinfo == timezone.utc and first.iso_week == "2026-W11"
        assert {(f.rule_id, f.finding_key, f.severity_rank) for f in first.findings} == {
            ("R17", "nephrology", 2), ("R17", "rheumatology", 1)}
        assert second.issued_at == datetime(2026, 3, 9, 11, 0, tzinfo=timezone.utc)  # the same instant, in UTC
        assert (second.silent, second.draft_order_key, second.indicator) == (True, "rx:123|500 mg|oral", "warning")


def test_a_batch_of_cards_is_one_transaction(store):
    store.record_cards([card("c-1", Finding("R01"))])
    with pytest.raises(IntegrityError):
        store.record_cards([card("c-2", Finding("R02")), card("c-1", Finding("R01"))])
    with Session(store.engine) as session:
        assert session.scalars(select(IssuedCard.uuid)).all() == ["c-1"]
        assert session.scalar(select(func.count()).select_from(CardFinding)) == 1


def test_a_card_order_select_is_found_for_order_sign_within_the_window(store):
    order = "rx:313782|1 tablet|oral"
    shown = ShownKey(order, "R05", "aluminium")
    store.record_cards([
        card("s-1", Finding("R05", "aluminium"), hook="order-select", draft_order_key=order, at=T0),
        card("s-2", Finding("R05", "aluminium"), hook="order-select", draft_order_key=order, indicator="warning",
             at=T0 + timedelta(minutes=5)),
        card("s-3", Finding("R06", "phosphate"), hook="order-select", draft_order_key=order, silent=True, at=T0),
        card("s-4", Finding("R08c"), hook="order-sign", draft_order_key=order, at=T0),
        card("s-5", Finding("R05", "aluminium"), hook="order-select", draft_order_key=order, patient=OTHER_PATIENT),
        card("s-6", Finding("R22a"), hook="order-select", draft_order_key="rx:other", at=T0),
    ])
    keys = [shown, ShownKey(order, "R06", "phosphate"), ShownKey(order, "R08c", ""), ShownKey(order, "R22a", "")]
    day_before_sign = T0 + timedelta(hours=1) - timedelta(hours=24)
    assert store.shown_at_order_select(PATIENT, keys, since=day_before_sign) == {shown: "warning"}
    assert store.shown_at_order_select(PATIENT, keys, since=T0 + timedelta(minutes=1)) == {shown: "warning"}
    assert store.shown_at_order_select(PATIENT, keys, since=T0 + timedelta(minutes=6)) == {}
    assert store.shown_at_order_select(OTHER_PATIENT, [shown, keys[1]], since=day_before_sign) == {shown: "info"}
    assert store.shown_at_order_select(PATIENT, [], since=day_before_sign) == {}


# --- feedback --------------------------------------------------------------------------------------------------


def _feedback_rows(store):
    with Session(store.engine) as session:
        return session.scalars(select(FeedbackRecord).order_by(FeedbackRecord.id)).all()


def test_feedback_is_idempotent_on_retry(store):
    store.record_cards([card("c-1", Finding("R02"), suggestion_uuids=("s-1",))])
    accepted = feedback("c-1", "accepted", accepted_suggestions=("s-1",))
    assert store.record_feedback(accepted, T0 + timedelta(minutes=1)) == (True, True)
    assert store.record_feedback(accepted, T0 + timedelta(minutes=2)) == (False, True)
    # The same outcome instant written with another offset is the same retry.
    same_instant = feedback("c-1", "accepted", at=T0.astimezone(timezone(timedelta(hours=-5))))
    assert store.record_feedback(same_instant, T0 + timedelta(minutes=3)).stored is False
    # A client's own key identifies a retry even if it re-stamps the entry.
    keyed = [feedback("c-1", "overridden", at=T0 + timedelta(seconds=s), client_key="req-7") for s in (1, 2)]
    assert [store.record_feedback(entry, T0).stored for entry in keyed] == [True, False]
    rows = _feedback_rows(store)
    assert [(r.outcome, r.known_card, r.accepted_suggestions) for r in rows] == [
        ("accepted", True, ["s-1"]), ("overridden", True, [])]
    assert rows[0].received_at == T0 + timedelta(minutes=1)
    week = store.rule_weekly_stats(T0, T0 + timedelta(days=7)).rules
    assert [(w.rule_id, w.issued, w.accepted, w.overridden) for w in week] == [("R02", 1, 1, 1)]


def test_feedback_for_an_unknown_card_is_kept_and_counted(store):
    store.record_cards([card("c-1", Finding("R01"), issuer="iss-a", tenant="t1")])
    assert store.record_feedback(feedback("never-issued"), T0) == (True, False)
    # Another issuer's card: kept, counted as unknown, and it does not silence the other tenant's rule.
    assert store.record_feedback(feedback("c-1", issuer="iss-b", tenant="t1"), T0) == (True, False)
    assert store.record_feedback(feedback("c-1", "accepted", issuer="iss-a", tenant="t1",
                                          accepted_suggestions=("x",)), T0) == (True, True)
    assert [(r.card_uuid, r.known_card) for r in _feedback_rows(store)] == [
        ("never-issued", False), ("c-1", False), ("c-1", True)]
    assert store.active_dismissals(PATIENT, T0) == []
    stats = store.rule_weekly_stats(T0, T0 + timedelta(days=7))
    assert stats.unknown_card_feedback == {"2026-W11": 2}
    assert [(w.rule_id, w.accepted, w.overridden) for w in stats.rules] == [("R01", 1, 0)]


def test_a_retry_racing_the_original_is_stored_once(store):
    store.record_cards([card("c-1", Finding("R01"))])
    results = _in_threads(8, lambda _: store.record_feedback(feedback("c-1"), T0))
    assert sorted(results) == [(False, True)] * 7 + [(True, True)], results
    assert len(_feedback_rows(store)) == 1 and len(store.active_dismissals(PATIENT, T0)) == 1


@pytest.mark.parametrize("keep", [False, True])
def test_the_user_comment_is_kept_only_when_allowed(db_url, keep):
    store = Store(db_url, keep_user_comments=keep)
    store.upgrade()
    try:
        entry = feedback("c-1", override_code="patient-declined", override_system="https://x.example/reasons",
                         override_display="Patient declined", user_comment="spoke with the patient")
        store.record_feedback(entry, T0)
        [row] = _feedback_rows(store)
        assert (row.override_code, row.override_system, row.override_display) == (
            "patient-declined", "https://x.example/reasons", "Patient declined")
        assert row.user_comment == ("spoke with the patient" if keep else None)
    finally:
        store.close()


def test_feedback_entry_from_a_cds_hooks_body():
    entry = FeedbackEntry.from_cds_hooks("svc", {
        "card": "c-1", "outcome": "overridden", "outcomeTimestamp": "2026-03-09T10:00:00Z",
        "overrideReason": {"reason": {"system": "https://s", "code": "c", "display": "d"}, "userComment": "u"},
    }, issuer="iss", client_key="k")
    assert (entry.card_uuid, entry.outcome, entry.outcome_at) == ("c-1", "overridden", T0)
    assert (entry.override_system, entry.override_code, entry.override_display, entry.user_comment) == (
        "https://s", "c", "d", "u")
    assert (entry.issuer, entry.client_key, entry.accepted_suggestions) == ("iss", "k", ())


# --- dismissals (A22) ------------------------------------------------------------------------------------------


def test_an_overridden_dismissible_info_card_is_hidden_until_it_expires(store):
    store.record_cards([
        card("r17", Finding("R17", "nephrology", 1), Finding("R17", "rheumatology", 0)),
        card("r05", Finding("R05", "aluminium")),
        card("r20-warning", Finding("R20", "x"), indicator="warning"),
        card("r01-silent", Finding("R01", "y"), silent=True),
        card("r01-accepted", Finding("R01", "z"), suggestion_uuids=("s",)),
        card("r01-other", Finding("R01", "w"), patient=OTHER_PATIENT),
    ])
    for uuid in ("r17", "r05", "r20-warning", "r01-silent"):
        store.record_feedback(feedback(uuid), T0)
    store.record_feedback(feedback("r01-accepted", "accepted", accepted_suggestions=("s",)), T0)
    active = store.active_dismissals(PATIENT, T0 + timedelta(days=1))
    assert [(d.rule_id, d.finding_key, d.severity_rank) for d in active] == [
        ("R17", "nephrology", 1), ("R17", "rheumatology", 0)]
    nephrology = active[0]
    assert nephrology.expires_at == T0 + timedelta(days=90)
    assert nephrology.hides(Finding("R17", "nephrology", 1))
    assert not nephrology.hides(Finding("R17", "nephrology", 2))  # eGFR 55 dismissed, eGFR 25 shows again
    assert not nephrology.hides(Finding("R17", "dermatology", 0))
    assert store.active_dismissals(PATIENT, T0 + timedelta(days=90) - timedelta(seconds=1)) != []
    assert store.active_dismissals(PATIENT, T0 + timedelta(days=90)) == []
    assert store.active_dismissals(OTHER_PATIENT, T0) == []


def test_the_dismissal_period_is_a_setting_and_a_new_override_renews_it(db_url):
    store = Store(db_url, dismissal_period=timedelta(days=30))
    store.upgrade()
    try:
        store.record_cards([card("a", Finding("R20", "k", 1)), card("b", Finding("R20", "k", 2), at=T0 + timedelta(days=40))])
        store.record_feedback(feedback("a"), T0)
        store.close()
        store = Store(db_url, dismissal_period=timedelta(days=30))  # a restart, or another replica
        assert [d.expires_at for d in store.active_dismissals(PATIENT, T0)] == [T0 + timedelta(days=30)]
        later = T0 + timedelta(days=40)
        assert store.active_dismissals(PATIENT, later) == []
        store.record_feedback(feedback("b", at=later), later)
        [renewed] = store.active_dismissals(PATIENT, later)
        assert (renewed.severity_rank, renewed.expires_at) == (2, later + timedelta(days=30))
    finally:
        store.close()


# --- analytics and retention -----------------------------------------------------------------------------------


def test_weekly_stats_count_what_was_recorded(store):
    week2 = T0 + timedelta(days=7)
    store.record_cards([
        card("a", Finding("R01"), suggestion_uuids=("s",)),
        card("b", Finding("R01")),
        card("c", Finding("R01")),
        card("d", Finding("R17", "nephrology"), Finding("R17", "rheumatology"), Finding("R02")),
        card("e", Finding("R01"), silent=True),
        card("f", Finding("R01"), at=week2),
        card("g", Finding("R01"), at=T0 - timedelta(days=1)),  # before the period
    ])
    store.record_feedback(feedback("a", "accepted", accepted_suggestions=("s",)), T0)
    store.record_feedback(feedback("a", "accepted", at=T0 + timedelta(seconds=1), accepted_suggestions=("s",)), T0)
    store.record_feedback(feedback("b", override_code="already-done"), T0)
    store.record_feedback(feedback("c"), T0)
    store.record_feedback(feedback("d", override_code="already-done"), T0)
    store.record_feedback(feedback("f", override_code="not-relevant"), week2 + timedelta(days=1))
    store.record_feedback(feedback("g", override_code="not-relevant"), T0)  # feedback now, card of the week before
    stats = store.rule_weekly_stats(T0, T0 + timedelta(days=14))
    got = {(r.rule_id, r.week): (r.issued, r.silent, r.accepted, r.overridden, r.override_reasons, r.acceptance_rate)
           for r in stats.rules}
    assert got == {
        ("R01", "2026-W11"): (3, 1, 1, 2, {"": 1, "already-done": 1}, 1 / 3),
        ("R02", "2026-W11"): (1, 0, 0, 1, {"already-done": 1}, 0.0),
        ("R17", "2026-W11"): (1, 0, 0, 1, {"already-done": 1}, 0.0),
        ("R01", "2026-W12"): (1, 0, 0, 1, {"not-relevant": 1}, 0.0),
    }
    assert [(r.week, r.rule_id) for r in stats.rules] == sorted((r.week, r.rule_id) for r in stats.rules)
    assert stats.unknown_card_feedback == {}


def test_iso_weeks_cross_the_year_boundary():
    assert iso_week(datetime(2027, 1, 1, 12, tzinfo=timezone.utc)) == "2026-W53"
    # Monday 00:30 in Auckland is still Sunday in UTC: weeks are UTC weeks.
    assert iso_week(datetime(2026, 3, 16, 0, 30, tzinfo=timezone(timedelta(hours=13)))) == "2026-W11"


def test_purge_removes_old_rows_only(store):
    cutoff = T0
    store.record_cards([card("old", Finding("R20", "k"), at=cutoff - timedelta(seconds=1)),
                        card("new", Finding("R01"), at=cutoff)])
    store.record_feedback(feedback("old"), cutoff - timedelta(seconds=1))  # starts a dismissal until T0 + 90 d
    store.record_feedback(feedback("new", "accepted", accepted_suggestions=("s",)), cutoff)
    store.remember_jti("iss", "a" * 64, cutoff + timedelta(minutes=5), cutoff, 10)
    store.remember_jti("iss", "b" * 64, cutoff + timedelta(hours=2), cutoff, 10)
    counts = store.purge(older_than=cutoff, now=cutoff + timedelta(hours=1))
    assert (counts.cards, counts.feedback, counts.dismissals, counts.replay_entries) == (1, 1, 0, 1)
    with Session(store.engine) as session:
        assert session.scalars(select(IssuedCard.uuid)).all() == ["new"]
        assert session.scalars(select(CardFinding.card_uuid)).all() == ["new"]
        assert session.scalars(select(FeedbackRecord.card_uuid)).all() == ["new"]
        assert session.scalars(select(ReplayEntry.jti_hash)).all() == ["b" * 64]
        assert session.scalar(select(func.count()).select_from(Dismissal)) == 1
    assert store.purge(older_than=cutoff, now=cutoff + timedelta(days=91)).dismissals == 1


# --- JWT replay store ------------------------------------------------------------------------------------------


def test_the_replay_store_accepts_once_and_bounds_each_issuer(store):
    exp = T0 + timedelta(minutes=5)
    def remember(issuer: str, jti: str, now: datetime = T0) -> ReplayVerdict:
        return store.remember_jti(issuer, jti * 64, now + timedelta(minutes=5), now, per_issuer_limit=2)

    assert remember("iss-a", "1") is ReplayVerdict.ACCEPTED
    assert remember("iss-a", "1") is ReplayVerdict.REPLAYED
    assert remember("iss-b", "1") is ReplayVerdict.ACCEPTED  # the same jti from another issuer is another token
    assert remember("iss-a", "2") is ReplayVerdict.ACCEPTED
    assert remember("iss-a", "3") is ReplayVerdict.FULL
    assert remember("iss-a", "1") is ReplayVerdict.REPLAYED  # a replay is a replay, full or not
    assert remember("iss-b", "2") is ReplayVerdict.ACCEPTED  # iss-a's bound is not iss-b's
    assert remember("iss-a", "3", now=exp) is ReplayVerdict.ACCEPTED  # the expired ones went first
    with Session(store.engine) as session:
        rows = session.execute(select(ReplayEntry.issuer, ReplayEntry.jti_hash).order_by(ReplayEntry.issuer)).all()
    # iss-a's two expired entries were deleted when its next token came; iss-b's wait for its own next token.
    assert [(issuer, jti[0]) for issuer, jti in rows] == [("iss-a", "3"), ("iss-b", "1"), ("iss-b", "2")]
    with pytest.raises(ValueError):
        store.remember_jti("iss-a", "4" * 64, T0, T0, 2)


def _in_threads(count: int, work) -> list:
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except BaseException as error:  # reported by the assertion, not lost in a thread
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_one_jti_remembered_concurrently_is_accepted_exactly_once(store):
    results = _in_threads(8, lambda _: store.remember_jti("iss", "f" * 64, T0 + timedelta(minutes=5), T0, 100))
    assert sorted(results) == [ReplayVerdict.ACCEPTED] + [ReplayVerdict.REPLAYED] * 7, results


def test_the_issuer_bound_holds_under_concurrency(store):
    results = _in_threads(8, lambda i: store.remember_jti("iss", f"{i:064x}", T0 + timedelta(minutes=5), T0, 3))
    assert sorted(results) == [ReplayVerdict.ACCEPTED] * 3 + [ReplayVerdict.FULL] * 5, results


# --- no patient data in clear ----------------------------------------------------------------------------------


def test_no_patient_id_in_the_database_file(tmp_path):
    secret_id = "patient-SECRET-123"
    store = Store(f"sqlite:///{tmp_path / 'cds.sqlite3'}")
    store.upgrade()
    patient = KEY.patient(SERVER, secret_id)
    store.record_cards([card("c-1", Finding("R17", "nephrology"), patient=patient),
                        card("c-2", Finding("R05", "x"), patient=patient, hook="order-select",
                             draft_order_key="rx:1|1 mg|oral")])
    store.record_feedback(feedback("c-1", user_comment=f"discussed with {secret_id}"), T0)
    assert store.active_dismissals(patient, T0)
    store.close()
    data = b"".join(path.read_bytes() for path in tmp_path.iterdir() if path.is_file())
    assert patient.encode() in data  # the files read are the ones written
    for clear in (secret_id, SERVER, "ehr.example.org"):
        assert clear.encode() not in data and clear.encode("utf-16-le") not in data


def test_patient_keys():
    assert KEY.patient(SERVER, "p") == KEY.patient("HTTPS://EHR.example.org/fhir/", "p")
    assert KEY.patient(SERVER, "p") != KEY.patient(SERVER + "2", "p") != KEY.patient(SERVER, "q")
    assert KEY.patient(SERVER, "p") != PatientKey("another secret, sixteen bytes+").patient(SERVER, "p")
    assert KEY.patient("https://a/b", "c") != KEY.patient("https://a", "b/c")
    assert KEY.server(SERVER) == KEY.server(SERVER + "/") != KEY.server("https://other.example.org/fhir")
    assert "test secret" not in repr(KEY)
    with pytest.raises(ValueError):
        PatientKey("short")
    with pytest.raises(ValueError):
        KEY.patient(SERVER, "")


def test_database_urls(tmp_path):
    assert normalise_url("postgres://u:p@db.example.org/cds") == "postgresql+psycopg://u:p@db.example.org/cds"
    assert normalise_url("postgresql://u:p@db.example.org/cds") == "postgresql+psycopg://u:p@db.example.org/cds"
    url = sqlite_url(tmp_path / "data" / "dir")
    assert url == f"sqlite:///{tmp_path}/data/dir/calcinosis-cds.sqlite3"
    store = Store(url)  # makes the data directory
    try:
        assert store.upgrade() == head_revision() and store.ping()
        assert (tmp_path / "data" / "dir").stat().st_mode & 0o777 == 0o700
    finally:
        store.close()
    with pytest.raises(ValueError, match="unsupported database"):
        make_engine("mysql://u:p@db.example.org/cds")


def test_records_refuse_identifiers_in_clear_and_naive_times():
    with pytest.raises(ValueError, match="never an identifier in clear"):
        card("c", Finding("R01"), patient="patient-SECRET-123")
    with pytest.raises(ValueError, match="timezone-aware"):
        card("c", Finding("R01"), at=datetime(2026, 3, 9, 10, 0))
    with pytest.raises(ValueError):
        feedback("c", outcome="ignored")
    with pytest.raises(ValueError):
        Store("sqlite://")


def test_cards_held_back_are_counted_apart_from_silent_mode(store):
    store.record_cards([
        card("shown", Finding("R20")),
        card("silent", Finding("R20"), silent=True),
        card("dismissed", Finding("R20"), silent=True, held_back="dismissed"),
        card("repeat", Finding("R20"), silent=True, held_back="repeat"),
    ])
    [week] = store.rule_weekly_stats(T0, T0 + timedelta(days=7)).rules
    assert (week.issued, week.silent, week.suppressed) == (1, 1, 2)
    with pytest.raises(ValueError, match="held_back"):
        card("x", Finding("R20"), held_back="dismissed")  # held back, yet not silent


def test_a_forked_child_does_not_reuse_the_parents_connections(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'cds.sqlite3'}")
    store.upgrade()
    assert store.ping()
    parent_pool = store.engine.pool
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new, empty pool, and a database that still answers
        os.close(read)
        ok = store.engine.pool is not parent_pool and store.engine.pool.checkedin() == 0 and store.ping()
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
    assert store.engine.pool is parent_pool and store.ping()  # the parent's connections were not closed
    store.close()
