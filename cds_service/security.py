"""Authentication of CDS clients (CDS Hooks 2.0 §Security). The JWT verification itself is issue 5's work; until it
lands, only CDS_AUTH=off can start, and any other mode refuses to start rather than run unauthenticated."""

from __future__ import annotations

from .settings import Settings, SettingsError


class Authenticator:
    def __init__(self, settings: Settings):
        self.mode = settings.auth

    @classmethod
    def from_settings(cls, settings: Settings) -> "Authenticator":
        if settings.auth != "off":
            raise SettingsError(f"CDS_AUTH={settings.auth} is not available yet: JWT verification is not implemented")
        return cls(settings)

    def authenticate(self, request, settings: Settings) -> dict | None:
        return None
