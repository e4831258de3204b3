"""Authentication of CDS clients by the JWT every call carries (CDS Hooks 2.0 §Security; docs/security.md).

An EHR sends `Authorization: Bearer <JWT>` on discovery, service and feedback calls. The token is accepted only if
all of these hold, checked in this order (a failure is a 401 with an empty body; the reason goes to the log, never the
token):

1. the header: `alg` is one we trust (ES384, RS384, plus those of CDS_JWT_EXTRA_ALGORITHMS; never `none` or HMAC),
   `kid` is present, `typ` is JWT;
2. `iss` names an issuer of the trust file (CDS_ISSUERS), and a `jku`, if any, is on that issuer's allowlist (a jku
   off the list is never fetched);
3. the signature verifies with the issuer's key of that `kid`: from its static JWK Set, its `jwks_uri` or an
   allowlisted `jku` (fetched within one deadline for the whole fetch, cached, fetched again when a `kid` is unknown
   at most every MIN_REFETCH_SECONDS per issuer; one fetch per URL at a time, which others wait for only when they
   have no key at all, and never longer than that deadline);
4. `aud` is exactly the URL called (CDS_PUBLIC_URL + path, else the request's own URL), `exp`, `iat` and `jti` are
   present, `exp`/`iat`/`nbf` are valid with CDS_JWT_LEEWAY_SECONDS of leeway, and the token lives at most an hour;
5. `tenant` is allowed when the issuer lists tenants;
6. `jti` has not been seen from this issuer within the token's lifetime (replay store).

The key caches are shared by the threads of one process. The replay store (ReplayStore: remember(issuer, jti,
expires_at, now)) is shared by every thread and every worker process forked from the process that built the app
(gunicorn's preload_app), through a SQLite file in a private temporary directory, when the service's database is
SQLite (one host). When CDS_DATABASE_URL is PostgreSQL it is that database (DatabaseReplayStore), so a token accepted
by one replica is a replay to every other. It is bounded per issuer, so one issuer's traffic can never refuse another's tokens.

Each trusted issuer also lists the FHIR servers its callers may have fetched from (`fhir_servers`, see
service_call.fetch_access).
"""

from .authenticator import Authenticator, audience_for
from .key_sets import RemoteKeySets
from .database_replay import DatabaseReplayStore
from .replay import ReplayCache, ReplayStore, SharedReplayCache, default_replay_cache
from .trust import (
    DEFAULT_ALGORITHMS,
    MAX_JWKS_BYTES,
    MAX_TOKEN_CHARS,
    MAX_TOKEN_LIFETIME_SECONDS,
    MIN_REFETCH_SECONDS,
    OPTIONAL_ALGORITHMS,
    REPLAY_ENTRIES_PER_ISSUER,
    Issuer,
    _Rejected,  # noqa: F401 - why a token was refused, which the tests read
    load_issuers,
    parse_jwk_set,
    verification_key,
)

__all__ = [
    "Authenticator", "DatabaseReplayStore", "audience_for", "RemoteKeySets", "ReplayCache", "ReplayStore", "SharedReplayCache",
    "default_replay_cache", "DEFAULT_ALGORITHMS", "OPTIONAL_ALGORITHMS", "MAX_JWKS_BYTES", "MAX_TOKEN_CHARS",
    "MAX_TOKEN_LIFETIME_SECONDS", "MIN_REFETCH_SECONDS", "REPLAY_ENTRIES_PER_ISSUER", "Issuer", "load_issuers",
    "parse_jwk_set", "verification_key",
]
