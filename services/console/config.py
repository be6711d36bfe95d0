"""The console's own settings (``CRM_CONSOLE_*``); the services' addresses default to the platform's ports."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import Settings


class ConsoleSettings(BaseSettings):
    """Where the console listens and where it finds each service's API."""

    model_config = SettingsConfigDict(env_prefix="CRM_CONSOLE_", extra="ignore")

    port: int = 8000
    # Empty: http://<CRM_API_HOST>:<the service's port>, as `crm up` starts them.
    identity_url: str = ""
    loyalty_url: str = ""
    alerts_url: str = ""
    campaigns_url: str = ""
    # Where npm ci put htmx and echarts (the container installs them outside the Python package).
    assets_dir: str = ""
    # Mark the session cookie Secure (behind a TLS-terminating proxy the console itself sees plain http).
    secure_cookies: bool = False
    # Seconds a page waits for one service before it shows the "service unavailable" page.
    timeout_s: float = 10.0

    def service_url(self, name: str, platform: Settings) -> str:
        """The base URL of one service's API."""
        return getattr(self, f"{name}_url") or f"http://{platform.api_host}:{getattr(platform, f'{name}_port')}"
