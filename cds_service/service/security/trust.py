"""What the service trusts: the issuers file (each issuer's keys, allowed jku URLs, tenants, FHIR servers),
the keys themselves, and why a token is refused (a phrase safe to log)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import jwt
from jwt.exceptions import (
    PyJWTError,
)

from .. import outbound
from ..settings import SettingsError


log = logging.getLogger("cds_service.security")

DEFAULT_ALGORITHMS = ("ES384", "RS384")
OPTIONAL_ALGORITHMS = ("ES256", "RS256", "ES512", "PS384")
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}

MAX_TOKEN_CHARS = 16 * 1024
"""A longer Authorization value is refused before any parsing."""
MAX_TOKEN_LIFETIME_SECONDS = 3600
"""exp - iat may not exceed this (CDS Hooks best practice: a replay cache for the maximum token lifetime, ≤ 1 h)."""
MAX_JWKS_BYTES = 512 * 1024
REPLAY_ENTRIES_PER_ISSUER = 100_000
"""Live (iss, jti) pairs kept per issuer (CDS_REPLAY_MAX_PER_ISSUER): 333 calls/s for 5-minute tokens."""
FETCH_WAIT_GRACE_SECONDS = 0.5
"""How much longer than a key-set fetch's own deadline a thread waits for it (its sockets are shut at the deadline)."""
MIN_REFETCH_SECONDS = 10.0
"""An issuer's key sets are fetched again (stale, or an unknown kid) at most this often: random kids from any caller
must not become a fetch flood, nor keep threads waiting on one."""

_ISSUER_FIELDS = {"jwks", "jwks_uri", "allowed_jku", "tenants", "fhir_servers", "about"}
_FILE_FIELDS = {"issuers", "about"}


class _Rejected(Exception):
    """Why a token was refused: a fixed phrase, safe to log (never the token, never attacker text)."""

    def __init__(self, reason: str, **fields: Any):
        super().__init__(reason)
        self.reason = reason
        self.fields = fields


def _loggable(value: Any, limit: int = 200) -> str | None:
    """A claim or header value as it may appear in a log line: a printable string, cut short."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = "".join(ch if ch.isprintable() else "?" for ch in text[:limit])
    return text + ("..." if len(value if isinstance(value, str) else text) > limit else "")



# --- keys --------------------------------------------------------------------------------------------------------


def _key_problem(jwk: Any) -> str | None:
    """Why a JWK cannot verify CDS Hooks tokens, or None when it can."""
    if not isinstance(jwk, dict):
        return "a key is not a JSON object"
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        return "a key has no kid"
    if jwk.get("kty") not in ("EC", "RSA"):
        return f"key {kid!r} has kty {jwk.get('kty')!r}; only EC and RSA public keys are trusted (never oct/HMAC)"
    if any(member in jwk for member in ("d", "p", "q", "dp", "dq", "qi", "k")):
        return f"key {kid!r} contains private key material; a trust file holds public keys only"
    if jwk.get("use", "sig") != "sig":
        return f"key {kid!r} has use {jwk.get('use')!r}, not sig"
    alg = jwk.get("alg")
    if alg is not None and alg not in DEFAULT_ALGORITHMS + OPTIONAL_ALGORITHMS:
        return f"key {kid!r} has alg {alg!r}, which CDS Hooks tokens never use"
    if jwk["kty"] == "EC" and jwk.get("crv") not in _EC_CURVES.values():
        return f"key {kid!r} has curve {jwk.get('crv')!r}; only P-256, P-384 and P-521 are used"
    try:
        jwt.PyJWK(jwk, algorithm=alg)
    except (PyJWTError, ValueError, TypeError, KeyError) as error:
        return f"key {kid!r} is not a valid JWK ({type(error).__name__})"
    return None


def parse_jwk_set(document: Any, *, where: str, strict: bool) -> dict[str, dict]:
    """kid -> JWK of a JWK Set. strict (a trust file): any unusable key is an error; else unusable keys are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError(f"{where}: a JWK Set is an object with a list of keys")
    keys: dict[str, dict] = {}
    for jwk in document["keys"]:
        problem = _key_problem(jwk)
        if problem is None and jwk["kid"] in keys:
            problem = f"kid {jwk['kid']!r} appears twice"
        if problem is not None:
            if strict:
                raise ValueError(f"{where}: {problem}")
            log.warning("JWK skipped", extra={"source": where, "problem": problem})
            continue
        keys[jwk["kid"]] = jwk
    if strict and not keys:
        raise ValueError(f"{where}: the JWK Set has no keys")
    return keys


def verification_key(jwk: dict, alg: str) -> jwt.PyJWK:
    """The JWK bound to the token's algorithm, if the key may be used with it (kty, curve and the key's own alg)."""
    if jwk.get("alg") not in (None, alg):
        raise _Rejected("key algorithm does not match the token's alg")
    if alg.startswith("ES"):
        if jwk.get("kty") != "EC" or jwk.get("crv") != _EC_CURVES[alg]:
            raise _Rejected("key type or curve does not match the token's alg")
    elif jwk.get("kty") != "RSA":
        raise _Rejected("key type does not match the token's alg")
    try:
        return _key_object(alg, json.dumps(jwk, sort_keys=True))
    except (PyJWTError, ValueError, TypeError, KeyError):
        raise _Rejected("key unusable") from None


@lru_cache(maxsize=256)
def _key_object(alg: str, jwk_json: str) -> jwt.PyJWK:
    """The key object of a JWK, built once per distinct key content (building it from the JWK on every call cost
    about 25 us of the token check): a rotated key has other content, so it gets its own."""
    return jwt.PyJWK(json.loads(jwk_json), algorithm=alg)



# --- the trust file ----------------------------------------------------------------------------------------------


def _url_ok(url: Any) -> bool:
    """An https URL, or http to this machine only (local development)."""
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if not parts.netloc:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1", "::1"))


@dataclass(frozen=True)
class Issuer:
    iss: str
    keys: Mapping[str, dict] | None  # a static JWK Set (kid -> JWK), or None when jwks_uri is used
    jwks_uri: str | None
    allowed_jku: frozenset[str]
    tenants: frozenset[str] | None  # None: any tenant (or none)
    fhir_servers: tuple[str, ...] = ()  # base URLs its calls may fetch from (outbound.AllowedServers); none: nothing


def load_issuers(path: Path | str) -> dict[str, Issuer]:
    """The trusted issuers of a CDS_ISSUERS file; SettingsError with a clear message for anything wrong in it."""
    where = f"CDS_ISSUERS file {path}"
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise SettingsError(f"{where} cannot be read: {error.strerror or error}") from None
    except ValueError as error:
        raise SettingsError(f"{where} is not valid JSON: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("issuers"), dict):
        raise SettingsError(f'{where} must be an object {{"issuers": {{"<iss>": {{...}}}}}}')
    if unknown := set(document) - _FILE_FIELDS:
        raise SettingsError(f"{where} has unknown fields {sorted(unknown)}; allowed: {sorted(_FILE_FIELDS)}")
    if not document["issuers"]:
        raise SettingsError(f"{where} trusts no issuer")
    issuers: dict[str, Issuer] = {}
    for iss, config in document["issuers"].items():
        at = f"{where}, issuer {iss!r}"
        if not iss.strip():
            raise SettingsError(f"{where}: an issuer's iss is empty")
        if not isinstance(config, dict):
            raise SettingsError(f"{at}: must be an object")
        if unknown := set(config) - _ISSUER_FIELDS:
            raise SettingsError(f"{at}: unknown fields {sorted(unknown)}; allowed: {sorted(_ISSUER_FIELDS)}")
        if ("jwks" in config) == ("jwks_uri" in config):
            raise SettingsError(f"{at}: give exactly one of jwks (a static JWK Set) or jwks_uri")
        keys = None
        if "jwks" in config:
            try:
                keys = parse_jwk_set(config["jwks"], where=at, strict=True)
            except ValueError as error:
                raise SettingsError(str(error)) from None
        elif not _url_ok(config["jwks_uri"]):
            raise SettingsError(f"{at}: jwks_uri must be an https URL (http only to localhost)")
        allowed_jku = config.get("allowed_jku", [])
        if not isinstance(allowed_jku, list) or not all(_url_ok(u) for u in allowed_jku):
            raise SettingsError(f"{at}: allowed_jku must be a list of https URLs (http only to localhost)")
        tenants = config.get("tenants")
        if tenants is not None and (
            not isinstance(tenants, list) or not tenants or not all(isinstance(t, str) and t for t in tenants)
        ):
            raise SettingsError(f"{at}: tenants must be a non-empty list of strings (omit it to allow any tenant)")
        fhir_servers = config.get("fhir_servers", [])
        if not isinstance(fhir_servers, list) or not all(isinstance(u, str) for u in fhir_servers):
            raise SettingsError(f"{at}: fhir_servers must be a list of FHIR server base URLs (or \"*\")")
        try:
            outbound.AllowedServers(fhir_servers, where=f"{at}: fhir_servers")
        except ValueError as error:
            raise SettingsError(str(error)) from None
        if not fhir_servers:
            log.warning("issuer lists no fhir_servers: its calls fetch nothing from a FHIR server",
                        extra={"issuer": _loggable(iss)})
        issuers[iss] = Issuer(
            iss=iss,
            keys=keys,
            jwks_uri=config.get("jwks_uri"),
            allowed_jku=frozenset(allowed_jku),
            tenants=frozenset(tenants) if tenants is not None else None,
            fhir_servers=tuple(u.rstrip("/") if u != "*" else u for u in fhir_servers),
        )
    return issuers
