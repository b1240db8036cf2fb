"""The settings of a `type: salesforce` sink section (declared by the sink type, validated through the registry)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from connector.sinks.settings import ON_MISSING_FIELD, SinkSettingsBase, StrictModel


class SalesforceAuthSettings(StrictModel):
    """One of: session id; username + password + security token; client credentials; JWT bearer."""

    session_id: SecretStr | None = Field(
        None, description="An existing session (no re-login possible when it expires)."
    )
    username: str | None = Field(None, description="Integration user (password, JWT bearer).")
    password: SecretStr | None = Field(None, description="With username and security_token: SOAP login.")
    security_token: SecretStr | None = Field(None, description="The user's security token.")
    domain: str | None = Field(None, description="login, test, or a My Domain prefix such as acme.my")
    consumer_key: str | None = Field(None, description="Connected app key (client credentials, JWT bearer).")
    consumer_secret: SecretStr | None = Field(None, description="Connected app secret (client credentials).")
    private_key_file: str | None = Field(None, description="PEM key for the JWT bearer flow.")
    jwt_audience: Literal["https://login.salesforce.com", "https://test.salesforce.com"] | None = Field(
        None,
        description="JWT bearer: the aud claim; default https://test.salesforce.com when domain is test or a "
        "sandbox My Domain (*.sandbox.my), else https://login.salesforce.com.",
    )
    token_url: str | None = Field(
        None,
        pattern=r"^https://",
        description=(
            "OAuth token endpoint for JWT bearer and client credentials; default https://<domain>.salesforce.com/"
            "services/oauth2/token (set domain to your My Domain, e.g. acme.my). Override only for a proxy or the "
            "emulator."
        ),
    )


class SalesforceSinkSettings(SinkSettingsBase):
    """A Salesforce org reached over its REST API."""

    type: Literal["salesforce"]
    instance_url: str = Field(description="https://<my-domain>.my.salesforce.com, or the emulator.")
    api_version: str = Field("62.0", pattern=r"^\d+\.\d$", description="REST API version, e.g. 62.0.")
    auth: SalesforceAuthSettings = Field(description="Credentials; see the configuration reference.")
    ca_bundle: str | None = Field(None, description="CA file to trust for TLS to instance_url (emulator, proxy).")
    on_missing_field: Literal["skip", "hold"] = Field("skip", description=ON_MISSING_FIELD)
