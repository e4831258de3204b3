"""The operated service's state, made once per app: the database (migrated at start-up), the patient-hash secret,
the per-site settings, the recorder of cards and feedback, and readiness.

The secret: CDS_HASH_SECRET. With CDS_AUTH=required (production) the service refuses to start without it: a secret
made up by one replica would not match another's, and one lost with a container would orphan every dismissal. In
development (auth off or optional) one is generated once and kept in CDS_DATA_DIR, readable by the service only.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

import cards

from .clock import Clock
from .discovery import Service
from .errors import ServiceUnavailable
from .records import Recorder, StoreUnavailable
from .service_call import CallResult, handle
from .settings import Settings, SettingsError
from .site_settings import Site, SiteSettings
from .storage import PatientKey, Store, sqlite_url
from .storage.keys import MIN_SECRET_BYTES

log = logging.getLogger("cds_service.operations")

SECRET_FILE = "patient-hash-secret"


def database_url(settings: Settings) -> str:
    return settings.database_url or sqlite_url(settings.data_dir)


def safe_url(url: str) -> str:
    """The URL for a message: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is reported as such, not echoed
        return "(unparsable database URL)"


def hash_secret(settings: Settings) -> str:
    if settings.hash_secret is not None:
        if len(settings.hash_secret.encode()) < MIN_SECRET_BYTES:
            raise SettingsError(f"CDS_HASH_SECRET must be at least {MIN_SECRET_BYTES} bytes long")
        return settings.hash_secret
    if settings.auth == "required":
        raise SettingsError(
            "CDS_HASH_SECRET is required with CDS_AUTH=required: the secret of the patient hashes must be the same "
            "on every replica and survive restarts (e.g. `python3 -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    return _development_secret(Path(settings.data_dir) / SECRET_FILE)


def _development_secret(path: Path) -> str:
    """The secret kept in the data directory, made on first use. Written to a temporary file and linked into place,
    so that processes starting together all read the same, whole secret."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        scratch = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        try:
            os.link(scratch, path)
            log.warning("generated a patient-hash secret for development; set CDS_HASH_SECRET in production",
                        extra={"file": str(path)})
        except FileExistsError:
            pass
        finally:
            scratch.unlink()
    value = path.read_text(encoding="utf-8").strip()
    if len(value.encode()) < MIN_SECRET_BYTES:
        raise SettingsError(f"{path} holds no usable patient-hash secret: delete it to make a new one")
    return value


def open_store(settings: Settings, *, upgrade: bool = True) -> Store:
    """The store, migrated to the newest revision (safe when several processes start at once)."""
    url = database_url(settings)
    try:
        store = Store(url, dismissal_period=timedelta(days=settings.dismissal_days),
                      keep_user_comments=settings.keep_user_comments)
    except ValueError as error:
        raise SettingsError(f"CDS_DATABASE_URL: {error}") from None
    if upgrade:
        try:
            store.upgrade()
        except (SQLAlchemyError, OSError) as error:
            store.close()
            raise SettingsError(
                f"the database {safe_url(url)} could not be reached or migrated: {type(error).__name__}"
            ) from None
    return store


@dataclass
class Operations:
    settings: Settings
    store: Store
    recorder: Recorder
    sites: SiteSettings
    clock: Clock

    @classmethod
    def start(cls, settings: Settings, clock: Clock) -> "Operations":
        knowledge = cards.knowledge()
        sites = SiteSettings()
        if settings.site_settings_file is not None:
            sites = SiteSettings.load(settings.site_settings_file, knowledge.rules)
        keys = PatientKey(hash_secret(settings))
        store = open_store(settings)
        return cls(settings, store, Recorder(store, keys, knowledge.version), sites, clock)

    def site(self, issuer: str | None, tenant: str | None) -> Site:
        return self.sites.for_caller(issuer, tenant)

    def readiness(self, trust_loaded: bool) -> tuple[bool, dict[str, Any]]:
        """What GET /readyz reports: the database answers, its schema is the newest, the trust file is loaded."""
        checks: dict[str, Any] = {"database": self.store.ping()}
        try:
            status = self.store.migration_status()
            checks["migrations"] = {"atHead": status.at_head, "current": status.current, "head": status.head}
        except SQLAlchemyError:
            checks["migrations"] = {"atHead": False}
        checks["trust"] = trust_loaded
        ready = bool(checks["database"] and checks["migrations"]["atHead"] and trust_loaded)
        return ready, checks

    # --- what the endpoints do with it ----------------------------------------------------------------------------

    def call(self, service: Service, body: Any, *, fetcher, issuer: str | None, tenant: str | None,
             fhir_servers: tuple[str, ...] | None = None, rule_page_base: str | None = None) -> CallResult:
        """A service call for this caller's site: its rules only, screened (A21, A22), recorded, and under silent
        mode computed and recorded but not sent. `fhir_servers` and `rule_page_base` as in service_call.handle."""
        site = self.site(issuer, tenant)
        now = self.clock()
        result = handle(service, body, settings=self.settings, clock=lambda: now, fetcher=fetcher,
                        fhir_servers=fhir_servers, rule_page_base=rule_page_base,
                        screen_for=lambda request: self.recorder.screen(request, now), switched_off=site.rules_off)
        self.recorder.record_call(service_id=service.id, request=result.request, evaluation=result.evaluation,
                                  site=site, issuer=issuer, tenant=tenant, now=now)
        held = [rule for card in result.evaluation.held_back for rule in card.rules]
        if held:
            result.summary["heldBack"] = held
        if site.silent:
            result.response["cards"] = []
            result.summary["silent"] = True
        return result

    def feedback(self, service_id: str, entries: list[dict], *, issuer: str | None, tenant: str | None,
                 client_key: str | None) -> list[dict]:
        try:
            return self.recorder.record_feedback(service_id, entries, issuer=issuer, tenant=tenant,
                                                 client_key=client_key, now=self.clock())
        except StoreUnavailable as error:
            raise ServiceUnavailable(str(error)) from None
