"""Issue 16, findings 3 and 4, redone as found: a key server that drips its answer, random kids from any caller, a
worker whose threads all wait on one key set; one issuer filling the replay store."""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from cds_service.service.security import Authenticator, Issuer, RemoteKeySets, ReplayCache, SharedReplayCache, _Rejected

from ._loopback import Answer, http_answer, loopback_server
from ._processes import free_port, server_process

STATIC = "https://static.example.org"
REMOTE = "https://remote.example.org"
AUD = "http://localhost/cds-services"


@pytest.fixture(scope="module")
def key():
    return ec.generate_private_key(ec.SECP384R1())


def public(key, kid: str) -> dict:
    return {**json.loads(ECAlgorithm.to_jwk(key.public_key())), "kid": kid, "use": "sig", "alg": "ES384"}


def token(key, iss: str, kid: str, aud: str = AUD, **claims) -> str:
    now = int(time.time())
    payload = {"iss": iss, "aud": aud, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4()), **claims}
    return jwt.encode(payload, key, algorithm="ES384", headers={"kid": kid, "typ": "JWT"})


def dripping_key_server():
    """A JWK Set server that answers one byte every 0.25 s: never idle long enough for a read timeout."""
    return loopback_server(lambda r: Answer(http_answer(200, {"keys": []}), drip_bytes=10_000, drip_interval=0.25))


# --- finding 3 ------------------------------------------------------------------------------------------------------


def test_a_dripping_key_server_is_cut_off_at_the_fetch_timeout_and_fetched_once_for_many_random_kids():
    with dripping_key_server() as server:
        remote = RemoteKeySets(timeout=1.0, cache_seconds=3600)
        url = f"{server.base}/jwks.json"
        durations, found = [], []

        def verify_random_kid():
            started = time.monotonic()
            found.append(remote.key(url, str(uuid.uuid4()), REMOTE))
            durations.append(time.monotonic() - started)

        threads = [threading.Thread(target=verify_random_kid) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        # Ten seconds later nothing is fetched again either: at most one fetch per issuer per period.
        remote.key(url, "yet-another-kid", REMOTE)
    assert found == [None] * 8
    assert len(server.requests) == 1, "one fetch for every random kid, not one per waiting thread"
    assert max(durations) < 1.0 + 0.5 + 0.3, durations


def test_verifications_with_other_keys_never_wait_on_a_key_set_fetch(key):
    with dripping_key_server() as server:
        authenticator = Authenticator(
            "required",
            {STATIC: Issuer(STATIC, {"static-1": public(key, "static-1")}, None, frozenset(), None),
             REMOTE: Issuer(REMOTE, None, f"{server.base}/jwks.json", frozenset(), None)},
            remote=RemoteKeySets(timeout=2.0, cache_seconds=3600),
        )
        blocked = threading.Thread(target=lambda: pytest.raises(_Rejected, authenticator.verify,
                                                                token(key, REMOTE, "random"), AUD))
        blocked.start()
        time.sleep(0.2)  # the remote fetch is under way
        started = time.monotonic()
        for _ in range(5):
            assert authenticator.verify(token(key, STATIC, "static-1"), AUD)["iss"] == STATIC
        elapsed = time.monotonic() - started
        blocked.join(timeout=10)
    assert elapsed < 0.5, f"static-key verifications took {elapsed:.2f} s during a key-set fetch"


@pytest.mark.slow
def test_a_worker_whose_threads_wait_on_a_dripping_key_server_answers_static_key_calls_within_seconds(key, tmp_path):
    """As found: 4 calls with random kids for a jwks_uri issuer occupy the 4 threads of the worker, then a call
    verified with a static key waits for a free thread. Before: 91 s; now the key-set fetch ends at its timeout."""
    with dripping_key_server() as keys:
        trust = tmp_path / "issuers.json"
        trust.write_text(json.dumps({"issuers": {STATIC: {"jwks": {"keys": [public(key, "static-1")]}},
                                                 REMOTE: {"jwks_uri": f"{keys.base}/jwks.json"}}}))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        # CDS_AUTH=required needs the patient-hash secret (the operated service, docs/operations.md).
        env = dict(os.environ, CDS_AUTH="required", CDS_ISSUERS=str(trust), CDS_LOG_LEVEL="WARNING",
                   CDS_JWKS_FETCH_TIMEOUT_SECONDS="2", CDS_DATA_DIR=str(tmp_path / "data"),
                   CDS_HASH_SECRET=secrets.token_hex(16))
        command = [sys.executable, "-m", "cds_service.service.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        with server_process(command, f"{base}/healthz", name="the server", env=env):
            statuses = []

            def call(iss: str, kid: str):
                request = urllib.request.Request(f"{base}/cds-services",
                                                 headers={"Authorization": "Bearer " + token(key, iss, kid, f"{base}/cds-services")})
                started = time.monotonic()
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status = response.status
                except urllib.error.HTTPError as error:
                    status = error.code
                statuses.append((iss, status, time.monotonic() - started))

            random_kids = [threading.Thread(target=call, args=(REMOTE, str(uuid.uuid4()))) for _ in range(4)]
            for thread in random_kids:
                thread.start()
            time.sleep(0.5)
            call(STATIC, "static-1")
            for thread in random_kids:
                thread.join(timeout=30)
    static = [s for s in statuses if s[0] == STATIC]
    assert static[0][1] == 200 and static[0][2] < 5.0, statuses
    assert sorted(s[1] for s in statuses if s[0] == REMOTE) == [401] * 4
    assert len(keys.requests) == 1


# --- finding 4 ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "shared"])
def test_one_issuer_at_its_bound_never_locks_out_another(kind, tmp_path, caplog):
    store = ReplayCache(max_per_issuer=50) if kind == "memory" else SharedReplayCache(50, directory=str(tmp_path))
    for n in range(50):
        assert store.remember("https://busy.example", f"j{n}", expires_at=1000, now=0)
    with caplog.at_level(logging.WARNING, logger="cds_service.service.security"):
        for _ in range(3):
            with pytest.raises(_Rejected, match="replay store full for this issuer"):
                store.remember("https://busy.example", str(uuid.uuid4()), expires_at=1000, now=1)
    # the bound is stated in the log once (not once per refused token), with the issuer and the bound
    warnings = [r for r in caplog.records if "replay store full" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].issuer == "https://busy.example" and warnings[0].bound == 50
    assert store.remember("https://quiet.example", "j0", expires_at=1000, now=1)
    assert not store.remember("https://quiet.example", "j0", expires_at=1000, now=2)  # still a replay store
    # entries expire with their token: the busy issuer is accepted again once its tokens have expired
    assert store.remember("https://busy.example", "after", expires_at=2000, now=1000)


def test_the_authenticator_refuses_only_the_flooding_issuers_tokens(key):
    keys = {"k": public(key, "k")}
    authenticator = Authenticator(
        "required",
        {"https://a.example": Issuer("https://a.example", keys, None, frozenset(), None),
         "https://b.example": Issuer("https://b.example", keys, None, frozenset(), None)},
        replay=ReplayCache(max_per_issuer=20),
    )
    for _ in range(20):
        authenticator.verify(token(key, "https://a.example", "k"), AUD)
    with pytest.raises(_Rejected, match="full"):
        authenticator.verify(token(key, "https://a.example", "k"), AUD)
    assert authenticator.verify(token(key, "https://b.example", "k"), AUD)["iss"] == "https://b.example"


def test_the_replay_store_interface_is_remember_issuer_jti_expiry_now():
    from cds_service.service.security import ReplayStore

    assert callable(ReplayStore.remember)
    for store in (ReplayCache(), SharedReplayCache()):
        assert store.remember("i", "j", 10.0, 0.0) is True and store.remember("i", "j", 10.0, 1.0) is False
