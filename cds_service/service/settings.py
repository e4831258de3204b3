"""Service settings, read once from the environment and validated before the app starts.

Every setting the service reads is declared here, with its default, so that the README's table, the Docker image and
the code cannot drift apart. Invalid values stop the service at start-up with a clear message (SettingsError), never
at the first request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Mapping

AUTH_MODES = ("off", "optional", "required")
SANDBOX_ISSUERS = "sandbox-development"
LOG_FORMATS = ("json", "text")
MIN_ADMIN_TOKEN = 24


class SettingsError(ValueError):
    """A setting has a value the service cannot run with."""


def bundled_data_path(name: str) -> Path:
    """Path of a data file shipped with the service (the sandbox's public keys)."""
    return Path(str(resources.files("cds_service.service") / "data" / name))


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


def _number(name: str, raw: str, kind: type, minimum: float) -> float | int:
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    # --- security (CDS Hooks 2.0 §Security) ---
    auth: str = "required"
    """off | optional (verify a token when present) | required."""
    issuers_file: Path | None = None
    """JSON file of trusted issuers (static JWK Sets or jwks_uri, allowed jku and tenants)."""
    public_url: str | None = None
    """External base URL of the service (e.g. https://cds.example.org); JWT `aud` is computed from it."""
    cors_origins: tuple[str, ...] = ("*",)
    jwt_leeway_seconds: int = 30
    jwks_fetch_timeout_seconds: float = 3.0
    jwks_cache_seconds: int = 3600
    extra_jwt_algorithms: tuple[str, ...] = ()
    """Algorithms trusted besides ES384 and RS384: any of ES256, RS256, ES512, PS384."""
    max_body_bytes: int = 16 * 1024 * 1024
    replay_max_per_issuer: int = 100_000
    """Live (iss, jti) pairs the replay store keeps per issuer; at the bound that issuer's new tokens get 401."""

    # --- fetching what the prefetch lacks (CDS Hooks 2.0 §Prefetch) ---
    fhir_allow_http: bool = False
    """Allow a plain-http fhirServer (local development, the sandbox); production data needs https."""
    fhir_servers: tuple[str, ...] = ()
    """FHIR server base URLs that calls without a verified token may fetch from (a verified caller may fetch only
    from its issuer's `fhir_servers` in the issuers file); `*` for any server at a global address. Empty: none."""
    fetch_deadline_seconds: float = 4.0
    fetch_connect_timeout_seconds: float = 1.0
    fetch_read_timeout_seconds: float = 3.0
    fetch_max_pages: int = 20
    """Per key: 20 pages cover 400 Conditions at a server's common default of 20 a page; the deadline bounds time."""
    fetch_max_resources: int = 10_000
    fetch_max_bytes: int = 32 * 1024 * 1024
    """Every FHIR answer of one call together (all keys, pages and the Medication batch)."""

    # --- clinical product decisions that the clinical specification leaves to a setting ---
    low_dose_warfarin_mg_per_day: float = 2.0

    # --- operations ---
    request_head_timeout_seconds: float = 10.0
    """How long a client may take to send a request's line and headers (the server's worker, gunicorn_hooks.py)."""
    log_format: str = "json"
    log_level: str = "INFO"

    # --- state: the database, analytics, per-site settings (docs/operations.md) ---
    data_dir: Path = Path("data")
    """The SQLite database and the development patient-hash secret live here (the image: /var/lib/calcinosis-cds)."""
    database_url: str | None = field(default=None, repr=False)  # may carry a password
    """None: an SQLite file in data_dir; postgresql://... for production and replicas."""
    hash_secret: str | None = field(default=None, repr=False)
    """HMAC secret of the patient and FHIR-server hashes; required with CDS_AUTH=required."""
    retention_days: int = 400
    dismissal_days: int = 90
    keep_user_comments: bool = False
    admin_token: str | None = field(default=None, repr=False)
    site_settings_file: Path | None = None

    def __post_init__(self) -> None:
        if self.admin_token is not None and len(self.admin_token) < MIN_ADMIN_TOKEN:
            raise SettingsError(f"CDS_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN} characters long")
        if self.site_settings_file is not None and not Path(self.site_settings_file).is_file():
            raise SettingsError(f"CDS_SITE_SETTINGS names no readable file: {self.site_settings_file}")
        if self.auth not in AUTH_MODES:
            raise SettingsError(f"CDS_AUTH must be one of {', '.join(AUTH_MODES)}, not {self.auth!r}")
        if self.log_format not in LOG_FORMATS:
            raise SettingsError(f"CDS_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {self.log_format!r}")
        if self.public_url is not None and not self.public_url.startswith(("http://", "https://")):
            raise SettingsError(f"CDS_PUBLIC_URL must be an http(s) URL, not {self.public_url!r}")
        if "*" in self.cors_origins and len(self.cors_origins) > 1:
            raise SettingsError("CDS_CORS_ORIGINS is either * or a list of origins, not both")
        if self.issuers_file is not None and not Path(self.issuers_file).is_file():
            raise SettingsError(f"CDS_ISSUERS names no readable file: {self.issuers_file}")
        if self.auth != "off" and self.issuers_file is None:
            raise SettingsError(f"CDS_AUTH={self.auth} needs CDS_ISSUERS, the file of trusted issuers")
        from .outbound import AllowedServers

        try:
            AllowedServers(self.fhir_servers, where="CDS_FHIR_SERVERS")
        except ValueError as error:
            raise SettingsError(str(error)) from None

    @classmethod
    def development(cls, **changes) -> "Settings":
        """What `make run` and `calcinosis-cds serve` use: the sandbox trusted, plain http allowed."""
        return cls(**{**development_defaults(), **changes})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, defaults: Mapping | None = None) -> "Settings":
        """Settings from CDS_* environment variables; anything unset keeps `defaults`, else the class default.

        The class defaults are the production ones (authentication required), so a bare `create_app()` without
        CDS_ISSUERS refuses to start rather than run open.
        """
        env = os.environ if environ is None else environ
        values: dict = dict(defaults or {})

        def get(name: str) -> str | None:
            raw = env.get(name)
            return raw if raw is not None and raw.strip() != "" else None

        if (raw := get("CDS_AUTH")) is not None:
            values["auth"] = raw.strip().lower()
        if (raw := get("CDS_ISSUERS")) is not None:
            # "sandbox-development" names the bundled trust file of the public CDS Hooks sandbox (development only).
            values["issuers_file"] = (
                bundled_data_path("sandbox-issuers.json") if raw.strip() == SANDBOX_ISSUERS else Path(raw)
            )
        if (raw := get("CDS_PUBLIC_URL")) is not None:
            values["public_url"] = raw.strip().rstrip("/")
        if (raw := get("CDS_CORS_ORIGINS")) is not None:
            values["cors_origins"] = tuple(o.strip() for o in raw.split(",") if o.strip())
        if (raw := get("CDS_JWT_LEEWAY_SECONDS")) is not None:
            values["jwt_leeway_seconds"] = _number("CDS_JWT_LEEWAY_SECONDS", raw, int, 0)
        if (raw := get("CDS_JWKS_FETCH_TIMEOUT_SECONDS")) is not None:
            values["jwks_fetch_timeout_seconds"] = _number("CDS_JWKS_FETCH_TIMEOUT_SECONDS", raw, float, 0.1)
        if (raw := get("CDS_JWKS_CACHE_SECONDS")) is not None:
            values["jwks_cache_seconds"] = _number("CDS_JWKS_CACHE_SECONDS", raw, int, 0)
        if (raw := get("CDS_JWT_EXTRA_ALGORITHMS")) is not None:
            values["extra_jwt_algorithms"] = tuple(a.strip() for a in raw.split(",") if a.strip())
        if (raw := get("CDS_REPLAY_MAX_PER_ISSUER")) is not None:
            values["replay_max_per_issuer"] = _number("CDS_REPLAY_MAX_PER_ISSUER", raw, int, 1)
        if (raw := get("CDS_MAX_BODY_BYTES")) is not None:
            values["max_body_bytes"] = _number("CDS_MAX_BODY_BYTES", raw, int, 1024)
        if (raw := get("CDS_FHIR_ALLOW_HTTP")) is not None:
            values["fhir_allow_http"] = _bool("CDS_FHIR_ALLOW_HTTP", raw)
        if (raw := get("CDS_FHIR_SERVERS")) is not None:
            values["fhir_servers"] = tuple(u.strip().rstrip("/") or u.strip() for u in raw.split(",") if u.strip())
        if (raw := get("CDS_FETCH_DEADLINE_SECONDS")) is not None:
            values["fetch_deadline_seconds"] = _number("CDS_FETCH_DEADLINE_SECONDS", raw, float, 0.05)
        if (raw := get("CDS_FETCH_CONNECT_TIMEOUT_SECONDS")) is not None:
            values["fetch_connect_timeout_seconds"] = _number("CDS_FETCH_CONNECT_TIMEOUT_SECONDS", raw, float, 0.01)
        if (raw := get("CDS_FETCH_READ_TIMEOUT_SECONDS")) is not None:
            values["fetch_read_timeout_seconds"] = _number("CDS_FETCH_READ_TIMEOUT_SECONDS", raw, float, 0.01)
        if (raw := get("CDS_FETCH_MAX_PAGES")) is not None:
            values["fetch_max_pages"] = _number("CDS_FETCH_MAX_PAGES", raw, int, 1)
        if (raw := get("CDS_FETCH_MAX_RESOURCES")) is not None:
            values["fetch_max_resources"] = _number("CDS_FETCH_MAX_RESOURCES", raw, int, 1)
        if (raw := get("CDS_FETCH_MAX_BYTES")) is not None:
            values["fetch_max_bytes"] = _number("CDS_FETCH_MAX_BYTES", raw, int, 1024)
        if (raw := get("CDS_LOW_DOSE_WARFARIN_MG")) is not None:
            values["low_dose_warfarin_mg_per_day"] = _number("CDS_LOW_DOSE_WARFARIN_MG", raw, float, 0)
        if (raw := get("CDS_REQUEST_HEAD_TIMEOUT_SECONDS")) is not None:
            values["request_head_timeout_seconds"] = request_head_timeout(raw)
        if (raw := get("CDS_LOG_FORMAT")) is not None:
            values["log_format"] = raw.strip().lower()
        if (raw := get("CDS_LOG_LEVEL")) is not None:
            values["log_level"] = raw.strip().upper()
        values.update(_state_settings(get))
        return cls(**values)


def _state_settings(get) -> dict:
    values: dict = {}
    if (raw := get("CDS_DATA_DIR")) is not None:
        values["data_dir"] = Path(raw.strip())
    if (raw := get("CDS_DATABASE_URL")) is not None:
        values["database_url"] = raw.strip()
    if (raw := get("CDS_HASH_SECRET")) is not None:
        values["hash_secret"] = raw.strip()
    if (raw := get("CDS_RETENTION_DAYS")) is not None:
        values["retention_days"] = _number("CDS_RETENTION_DAYS", raw, int, 1)
    if (raw := get("CDS_DISMISSAL_DAYS")) is not None:
        values["dismissal_days"] = _number("CDS_DISMISSAL_DAYS", raw, int, 1)
    if (raw := get("CDS_KEEP_USER_COMMENTS")) is not None:
        values["keep_user_comments"] = _bool("CDS_KEEP_USER_COMMENTS", raw)
    if (raw := get("CDS_ADMIN_TOKEN")) is not None:
        values["admin_token"] = raw.strip()
    if (raw := get("CDS_SITE_SETTINGS")) is not None:
        values["site_settings_file"] = Path(raw.strip())
    return values


def request_head_timeout(raw: str) -> float:
    """CDS_REQUEST_HEAD_TIMEOUT_SECONDS, as the app (at start-up) and the server's worker read it."""
    return _number("CDS_REQUEST_HEAD_TIMEOUT_SECONDS", raw, float, 0.5)


def development_defaults() -> dict:
    """Local development and the CDS Hooks sandbox: trust the sandbox issuer, allow a plain-http FHIR server."""
    return dict(
        auth="optional",
        issuers_file=bundled_data_path("sandbox-issuers.json"),
        fhir_allow_http=True,
        # Unauthenticated calls (the sandbox without a token) may fetch from any server at a global address; a
        # FHIR server on this machine or the local network must be named: CDS_FHIR_SERVERS=*,http://127.0.0.1:8090/fhir
        fhir_servers=("*",),
        log_format="text",
    )


ENVIRONMENT_VARIABLES = {
    # name: (meaning, default) — rendered into the README's configuration table.
    "CDS_AUTH": ("JWT authentication of callers: off, optional or required", "required (make run: optional)"),
    "CDS_ISSUERS": ("JSON file of trusted issuers, or sandbox-development for the bundled sandbox keys", "none (make run: sandbox-development)"),
    "CDS_PUBLIC_URL": ("external base URL: the JWT aud check behind a proxy, and the cards' links to the rule pages", "taken from the request"),
    "CDS_CORS_ORIGINS": ("comma-separated allowed origins, or *", "*"),
    "CDS_JWT_LEEWAY_SECONDS": ("clock skew allowed on exp/iat/nbf", "30"),
    "CDS_JWKS_FETCH_TIMEOUT_SECONDS": ("timeout for fetching an issuer's jwks_uri", "3"),
    "CDS_JWKS_CACHE_SECONDS": ("how long a fetched JWK Set is cached", "3600"),
    "CDS_JWT_EXTRA_ALGORITHMS": ("algorithms trusted besides ES384 and RS384", "none"),
    "CDS_MAX_BODY_BYTES": ("largest request body accepted (413 above)", "16777216"),
    "CDS_REPLAY_MAX_PER_ISSUER": ("live token ids the replay store keeps per issuer (its new tokens get 401 above)", "100000"),
    "CDS_FHIR_ALLOW_HTTP": ("allow a plain-http fhirServer", "false (make run: true)"),
    "CDS_FHIR_SERVERS": ("FHIR server base URLs calls without a verified token may fetch from (comma-separated; * for any server at a global address)", "none (make run: *)"),
    "CDS_FETCH_DEADLINE_SECONDS": ("deadline for all FHIR fetches of one request", "4"),
    "CDS_FETCH_CONNECT_TIMEOUT_SECONDS": ("connect timeout per FHIR fetch", "1"),
    "CDS_FETCH_READ_TIMEOUT_SECONDS": ("read timeout per FHIR fetch", "3"),
    "CDS_FETCH_MAX_PAGES": ("most search pages followed per prefetch key", "20"),
    "CDS_FETCH_MAX_RESOURCES": ("most resources read per prefetch key", "10000"),
    "CDS_FETCH_MAX_BYTES": ("most bytes of FHIR answers read for one request, all keys together", "33554432"),
    "CDS_LOW_DOSE_WARFARIN_MG": ("daily warfarin dose at or below which R08b calls it low", "2"),
    "CDS_REQUEST_HEAD_TIMEOUT_SECONDS": ("time a client has to send a request's line and headers (then it is closed)", "10"),
    "CDS_LOG_FORMAT": ("json or text", "json (make run: text)"),
    "CDS_LOG_LEVEL": ("DEBUG, INFO, WARNING, ERROR", "INFO"),
    "CDS_DATA_DIR": ("directory of the SQLite database (and, in development, the generated hash secret)", "./data (image: /var/lib/calcinosis-cds)"),
    "CDS_DATABASE_URL": ("sqlite:///FILE or postgresql://user:password@host/db (psycopg 3)", "SQLite file in CDS_DATA_DIR"),
    "CDS_HASH_SECRET": ("HMAC secret of the patient and FHIR-server hashes (16+ bytes); required with CDS_AUTH=required", "generated into CDS_DATA_DIR when auth is not required"),
    "CDS_RETENTION_DAYS": ("days issued cards and feedback are kept (calcinosis-cds db purge)", "400"),
    "CDS_DISMISSAL_DAYS": ("days an overridden R01/R17/R20 card stays hidden for that patient (A22)", "90"),
    "CDS_KEEP_USER_COMMENTS": ("store feedback's free-text userComment (it may hold patient data)", "false"),
    "CDS_ADMIN_TOKEN": ("bearer token (24+ characters) for /analytics; unset: analytics answer 404", "none"),
    "CDS_SITE_SETTINGS": ("JSON file of per-issuer/tenant settings: rules switched off, silent mode", "none"),
}
