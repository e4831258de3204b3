"""The replay store in the database (issue 18): on PostgreSQL every replica refuses a token another has accepted.
Run on an SQLite file and on a real PostgreSQL server (tests/postgres.py); the app chooses it only on PostgreSQL."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cds_service.service.security import Authenticator, DatabaseReplayStore, SharedReplayCache
from cds_service.service.security.database_replay import jti_hash
from cds_service.service.security.trust import _Rejected
from cds_service.service.settings import Settings
from cds_service.service.storage import Store
from cds_service.service.storage.schema import ReplayEntry

from .postgres import postgres_server, postgres_url  # noqa: F401 (fixtures)
from .test_security import issuers_file, keys  # noqa: F401 (fixtures)

T0 = 1_780_000_000.0  # seconds since the epoch; the store is given `now`, never reads a clock


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'cds.sqlite3'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    store = Store(url)
    store.upgrade()
    yield store
    store.close()


def test_a_token_id_is_accepted_once_per_issuer_and_stored_only_as_a_hash(store):
    replay = DatabaseReplayStore(store, max_per_issuer=10)
    assert replay.remember("iss-a", "token-1", T0 + 300, T0)
    assert not replay.remember("iss-a", "token-1", T0 + 300, T0 + 10)
    assert replay.remember("iss-b", "token-1", T0 + 300, T0)  # another issuer's token of the same id
    assert replay.first_use(("iss-a", "token-2"), T0 + 300, T0)
    with Session(store.engine) as session:
        stored = set(session.scalars(select(ReplayEntry.jti_hash)))
    assert stored == {jti_hash("token-1"), jti_hash("token-2")}
    assert not any("token" in value for value in stored)


def test_a_second_store_on_the_same_database_sees_the_first_ones_tokens(store):
    other = Store(str(store.engine.url.render_as_string(hide_password=False)))
    try:
        assert DatabaseReplayStore(store).remember("iss", "shared", T0 + 300, T0)
        assert not DatabaseReplayStore(other).remember("iss", "shared", T0 + 300, T0 + 1)
    finally:
        other.close()


def test_a_full_issuer_is_refused_with_one_warning_a_minute_and_others_are_not(store, caplog):
    replay = DatabaseReplayStore(store, max_per_issuer=2)
    assert replay.remember("iss", "1", T0 + 300, T0) and replay.remember("iss", "2", T0 + 300, T0)
    with caplog.at_level(logging.WARNING, logger="cds_service.security"):
        for n, now in enumerate((T0, T0 + 30, T0 + 61)):
            with pytest.raises(_Rejected, match="replay store full for this issuer"):
                replay.remember("iss", f"new-{n}", T0 + 300, now)
    assert [r.getMessage() for r in caplog.records].count(
        "replay store full for an issuer: its new tokens are refused until its entries expire") == 2
    assert not replay.remember("iss", "1", T0 + 300, T0)  # a replay stays a replay when full
    assert replay.remember("other", "1", T0 + 300, T0)
    assert replay.remember("iss", "3", T0 + 600, T0 + 300)  # its entries expired with their tokens


def test_an_expired_token_is_never_remembered(store):
    assert not DatabaseReplayStore(store).remember("iss", "late", T0, T0)


def test_a_database_that_does_not_answer_refuses_every_token(caplog):
    store = Store("postgresql://nobody:wrong@127.0.0.1:1/none", connect_args={"connect_timeout": 2})
    try:
        with caplog.at_level(logging.ERROR, logger="cds_service.security"):
            with pytest.raises(_Rejected, match="replay store unavailable"):
                DatabaseReplayStore(store).remember("iss", "any", T0 + 300, T0)
        assert "replay store unavailable" in caplog.text and "any" not in caplog.text
    finally:
        store.close()


def test_the_app_shares_the_replay_store_through_postgresql_only(issuers_file, postgres_url, tmp_path):  # noqa: F811
    settings = Settings(auth="required", issuers_file=issuers_file, replay_max_per_issuer=7)
    postgres, sqlite = Store(postgres_url), Store(f"sqlite:///{tmp_path / 'cds.sqlite3'}")
    try:
        chosen = Authenticator.from_settings(settings, postgres).replay
        assert isinstance(chosen, DatabaseReplayStore) and chosen.max_per_issuer == 7
        assert isinstance(Authenticator.from_settings(settings, sqlite).replay, SharedReplayCache)
        assert isinstance(Authenticator.from_settings(settings).replay, SharedReplayCache)
    finally:
        postgres.close()
        sqlite.close()
