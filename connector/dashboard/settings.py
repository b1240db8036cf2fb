"""`dashboard:` section of the config: the operations dashboard's own credential and exposure.

Only pydantic here: `connector.config` imports this module, so it must not import the rest of
the connector (or Flask).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

DEFAULT_PATH = "/dashboard"


class DashboardSettings(BaseModel):
    """The operations dashboard: HTTP Basic with its own credential, loopback-only by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Serve the dashboard (it also needs a password).")
    path: str = Field(
        DEFAULT_PATH,
        pattern=r"^/[A-Za-z0-9._~/-]*[A-Za-z0-9._~-]$",
        description="URL prefix of the dashboard pages, e.g. /dashboard.",
    )
    username: str = Field("admin", min_length=1, max_length=128, description="HTTP Basic user name.")
    password: SecretStr | None = Field(
        None,
        description="HTTP Basic password, e.g. ${CONNECTOR_DASHBOARD_PASSWORD}; "
        "without one the dashboard is not served. Never the webhook token.",
    )
    allow_remote: bool = Field(
        False,
        description="Serve requests from non-loopback addresses (and through proxies). By default the "
        "dashboard answers 403 to them even when the receiver is exposed.",
    )

    max_failed_logins: int = Field(
        10,
        ge=1,
        le=10_000,
        description="Failed logins from one address within `login_lockout_s` before that "
        "address is locked out (429) for the rest of the window.",
    )
    login_lockout_s: int = Field(300, ge=1, le=86_400, description="Length of the failed-login window (seconds).")

    @field_validator("password")
    @classmethod
    def _password_not_empty(cls, password: SecretStr | None) -> SecretStr | None:
        if password is not None and not password.get_secret_value().strip():
            raise ValueError("the password is empty (is its environment variable set to an empty value?)")
        return password

    @field_validator("username")
    @classmethod
    def _username_has_no_colon(cls, username: str) -> str:
        if ":" in username:
            raise ValueError("HTTP Basic user names cannot contain ':'")
        return username

    @property
    def active(self) -> bool:
        """Enabled and given a password: the only case in which the pages are served."""
        return self.enabled and self.password is not None
