"""The order in which a call's token is checked (see the package's docstring), and who may call."""

from __future__ import annotations

import logging
import time
from typing import Callable, Mapping

import jwt
from jwt.exceptions import (
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAudienceError,
    InvalidIssuedAtError,
    InvalidIssuerError,
    InvalidSignatureError,
    MissingRequiredClaimError,
    PyJWTError,
)

from ..errors import Unauthorized
from cds_service.record.fhir_values import finite_number
from ..settings import Settings, SettingsError

from .key_sets import RemoteKeySets
from ..storage import Store
from .database_replay import DatabaseReplayStore
from .replay import ReplayCache, ReplayStore, default_replay_cache
from .trust import (
    DEFAULT_ALGORITHMS,
    MAX_TOKEN_CHARS,
    MAX_TOKEN_LIFETIME_SECONDS,
    OPTIONAL_ALGORITHMS,
    Issuer,
    _loggable,
    _Rejected,
    load_issuers,
    verification_key,
)

MAX_TENANT_CHARS = 200  # the tenant column of the card and feedback records
log = logging.getLogger("cds_service.security")

# --- the authenticator -------------------------------------------------------------------------------------------


def audience_for(request, settings: Settings) -> str:
    """The exact URL the client called, which must be the token's aud: CDS_PUBLIC_URL + path, else the request's URL
    (scheme://host + path, without the query string)."""
    if settings.public_url:
        return settings.public_url.rstrip("/") + request.path
    return request.base_url


_CLAIM_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (ExpiredSignatureError, "token expired"),
    (ImmatureSignatureError, "token not yet valid (iat or nbf in the future)"),
    (InvalidAudienceError, "aud is not the URL called"),
    (InvalidIssuerError, "iss mismatch"),
    (InvalidIssuedAtError, "iat is not a number"),
    (MissingRequiredClaimError, "required claim missing"),
    (InvalidSignatureError, "signature invalid"),
)


def _replay_store(settings: Settings, store: Store | None) -> ReplayStore:
    bound = settings.replay_max_per_issuer
    if settings.auth == "off":
        return ReplayCache(bound)
    if store is not None and store.engine.dialect.name == "postgresql":
        return DatabaseReplayStore(store, bound)
    return default_replay_cache(bound)


class Authenticator:
    def __init__(
        self,
        mode: str,
        issuers: Mapping[str, Issuer],
        *,
        algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS,
        leeway: float = 30,
        remote: RemoteKeySets | None = None,
        replay: ReplayStore | None = None,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.mode = mode
        self.issuers = dict(issuers)
        self.algorithms = algorithms
        self.leeway = leeway
        self.remote = remote if remote is not None else RemoteKeySets(timeout=3.0, cache_seconds=3600)
        self.replay = replay if replay is not None else ReplayCache()
        self.wall_clock = wall_clock

    @classmethod
    def from_settings(cls, settings: Settings, store: Store | None = None) -> "Authenticator":
        """The authenticator for these settings; SettingsError (the app refuses to start) for a bad trust file or an
        algorithm that is not allowed. With a PostgreSQL `store` the replay store is its database (one for every
        replica); otherwise it is this host's (SQLite stays single-host)."""
        unknown = [a for a in settings.extra_jwt_algorithms if a not in OPTIONAL_ALGORITHMS]
        if unknown:
            raise SettingsError(
                f"CDS_JWT_EXTRA_ALGORITHMS may name only {', '.join(OPTIONAL_ALGORITHMS)}, not {', '.join(unknown)}"
            )
        issuers = load_issuers(settings.issuers_file) if settings.issuers_file is not None else {}
        if settings.auth == "required" and settings.public_url is None:
            log.warning(
                "CDS_PUBLIC_URL is not set: the JWT aud is checked against the Host the request names; "
                "set CDS_PUBLIC_URL in production"
            )
        algorithms = DEFAULT_ALGORITHMS + tuple(a for a in OPTIONAL_ALGORITHMS if a in settings.extra_jwt_algorithms)
        return cls(
            settings.auth,
            issuers,
            algorithms=algorithms,
            leeway=settings.jwt_leeway_seconds,
            remote=RemoteKeySets(
                timeout=settings.jwks_fetch_timeout_seconds, cache_seconds=settings.jwks_cache_seconds
            ),
            replay=_replay_store(settings, store),
        )

    def authenticate(self, request, settings: Settings) -> dict | None:
        """The verified claims of the request's token; None when auth is off, or optional and no token was sent.
        Raises errors.Unauthorized (an empty 401) for anything else; the reason is logged, the token never."""
        if self.mode == "off":
            return None
        header = request.headers.get("Authorization")
        if header is None:
            if self.mode == "optional":
                return None
            return self._reject(request, _Rejected("no Authorization header"))
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return self._reject(request, _Rejected("Authorization is not a Bearer token"))
        try:
            return self.verify(token, audience_for(request, settings))
        except _Rejected as rejected:
            return self._reject(request, rejected)

    def _reject(self, request, rejected: _Rejected):
        log.warning(
            "authentication rejected",
            extra={"reason": rejected.reason, "path": request.path, **{k: _loggable(v) for k, v in rejected.fields.items()}},
        )
        error = Unauthorized("authentication failed")
        error.reason = rejected.reason
        raise error

    def verify(self, token: str, audience: str) -> dict:
        """The claims of a token that passes every check; _Rejected with the reason otherwise."""
        if len(token) > MAX_TOKEN_CHARS:
            raise _Rejected("token too long")
        try:
            # Header and claims in one unverified read (each read checks and decodes the whole token again).
            unverified_token = jwt.decode_complete(token, options={"verify_signature": False})
            header, unverified = unverified_token["header"], unverified_token["payload"]
        except (PyJWTError, ValueError, TypeError):
            raise _Rejected("token is not a well-formed JWT") from None
        alg, kid, typ, jku = header.get("alg"), header.get("kid"), header.get("typ"), header.get("jku")
        iss = unverified.get("iss")
        if alg not in self.algorithms:
            raise _Rejected("alg not allowed", alg=alg, issuer=iss)
        if not isinstance(kid, str) or not kid:
            raise _Rejected("kid missing", issuer=iss)
        if not isinstance(typ, str) or typ.upper() != "JWT":
            raise _Rejected("typ is not JWT", issuer=iss)
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise _Rejected("iss not trusted", issuer=iss)
        if jku is not None and (not isinstance(jku, str) or jku not in issuer.allowed_jku):
            raise _Rejected("jku not allowlisted", issuer=iss, jku=jku)

        jwk = self._find_key(issuer, kid, jku)
        if jwk is None:
            raise _Rejected("kid unknown", issuer=iss, kid=kid)
        key = verification_key(jwk, alg)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=audience,
                issuer=iss,
                leeway=self.leeway,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except PyJWTError as error:
            reason = next((r for kind, r in _CLAIM_ERRORS if isinstance(error, kind)), "token invalid")
            raise _Rejected(reason, issuer=iss, kid=kid) from None

        now = self.wall_clock()
        exp, iat, jti = claims["exp"], claims["iat"], claims["jti"]
        if any(finite_number(v) is None for v in (exp, iat)):
            raise _Rejected("exp or iat is not a number", issuer=iss)
        if exp - iat > MAX_TOKEN_LIFETIME_SECONDS + self.leeway:
            raise _Rejected("token lifetime longer than an hour", issuer=iss)
        if not isinstance(jti, str) or not jti:
            raise _Rejected("jti is not a non-empty string", issuer=iss)
        tenant = claims.get("tenant")
        # Kept with the cards and feedback of the call (at most 200 characters there): a longer one is no tenant id.
        if tenant is not None and not (isinstance(tenant, str) and 0 < len(tenant) <= MAX_TENANT_CHARS):
            raise _Rejected("tenant is not a string of 1 to 200 characters", issuer=iss)
        if issuer.tenants is not None and (not isinstance(tenant, str) or tenant not in issuer.tenants):
            raise _Rejected("tenant not allowed", issuer=iss, tenant=tenant)
        if not self.replay.remember(iss, jti, float(exp) + self.leeway, now):
            raise _Rejected("jti replayed", issuer=iss, jti=jti)
        return claims

    def _find_key(self, issuer: Issuer, kid: str, jku: str | None) -> dict | None:
        """The issuer's key of this kid: static set or jwks_uri first, then the token's (allowlisted) jku."""
        if issuer.keys is not None:
            jwk = issuer.keys.get(kid)
        else:
            jwk = self.remote.key(issuer.jwks_uri, kid, issuer.iss)
        if jwk is None and jku is not None:
            jwk = self.remote.key(jku, kid, issuer.iss)
        return jwk
