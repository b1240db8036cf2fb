"""Salesforce logins (JWT bearer, client credentials) over loopback HTTPS against the emulator's token endpoint,
the SOAP-login warning of `connector validate`, and how Salesforce failures are classified.

The emulator answers ``/services/oauth2/token`` as Salesforce does; ``token_url`` points the connector at it. The
default token URLs (``https://<domain>.salesforce.com/…``) are checked with ``responses``, which answers in-process,
so no request ever leaves the machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import responses
import yaml
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from connector.cli import main
from connector.config import SalesforceSinkSettings
from connector.emulators.salesforce.server import SalesforceEmulator
from connector.errors import AuthError, PermanentError, RateLimited, SinkError, TransientError
from connector.sinks.salesforce.client import SalesforceConnection, login_findings
from connector.sinks.salesforce.errors import classify

USERNAME = "integration@acme.example"


class _Gate:
    def wait(self, cost: int = 1) -> None: ...


@pytest.fixture(scope="module")
def org() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator() as running:
        yield running


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A private key file (what the connector holds) and its self-signed certificate (what the app holds)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "2x connector")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("jwt") / "key.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path, certificate.public_bytes(serialization.Encoding.PEM)


def settings(org: SalesforceEmulator, **auth: Any) -> SalesforceSinkSettings:
    return SalesforceSinkSettings(
        type="salesforce", instance_url="https://acme.my.salesforce.com", ca_bundle=org.ca_file, auth=auth
    )


def log_in(settings: SalesforceSinkSettings) -> SalesforceConnection:
    """Open a connection and make one REST call with the session the login returned."""
    connection = SalesforceConnection("sf", settings)
    connection.open(_Gate())
    connection.call(lambda sf: sf.query("SELECT Id FROM Account"), where="test")
    return connection


def token_requests(org: SalesforceEmulator) -> list[dict[str, Any]]:
    return [e for e in org.request_log if e["path"] == "/services/oauth2/token"]


def test_client_credentials_on_the_my_domain_token_endpoint(org: SalesforceEmulator) -> None:
    org.register_oauth_client("cc-key", consumer_secret="cc-secret")
    token_url = f"{org.instance_url}/services/oauth2/token"
    connection = log_in(
        settings(org, consumer_key="cc-key", consumer_secret="cc-secret", domain="acme.my", token_url=token_url)
    )
    assert connection.logins == 1 and token_requests(org)[-1]["body"] == "grant_type=client_credentials"
    query = [e for e in org.request_log if e["path"].endswith("/query/")][-1]
    assert query["status"] == 200  # the returned instance_url and token work for REST calls
    with pytest.raises(AuthError) as caught:
        log_in(settings(org, consumer_key="cc-key", consumer_secret="wrong", domain="acme.my", token_url=token_url))
    assert caught.value.code == "invalid_client" and caught.value.crm_message == "invalid client credentials"


@pytest.mark.parametrize(
    ("domain", "audience"),
    [
        ("acme.my", "https://login.salesforce.com"),
        ("acme--uat.sandbox.my", "https://test.salesforce.com"),  # a sandbox's My Domain: the test audience
    ],
)
def test_jwt_bearer_with_a_my_domain(
    org: SalesforceEmulator, key_pair: tuple[Path, bytes], domain: str, audience: str
) -> None:
    key_file, certificate = key_pair
    org.register_oauth_client(f"jwt-{domain}", certificate_pem=certificate, username=USERNAME, audience=audience)
    log_in(
        settings(
            org,
            username=USERNAME,
            consumer_key=f"jwt-{domain}",
            private_key_file=str(key_file),
            domain=domain,
            token_url=f"{org.instance_url}/services/oauth2/token",
        )
    )
    form = dict(p.split("=", 1) for p in token_requests(org)[-1]["body"].split("&"))
    assert form["grant_type"] == "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
    claims = jwt.decode(form["assertion"], options={"verify_signature": False})
    assert (claims["iss"], claims["sub"], claims["aud"]) == (f"jwt-{domain}", USERNAME, audience)
    assert 0 < float(claims["exp"]) - datetime.now(UTC).timestamp() <= 181  # 3 minutes, rounded to a second


def test_jwt_audience_is_configurable_and_checked(org: SalesforceEmulator, key_pair: tuple[Path, bytes]) -> None:
    key_file, certificate = key_pair
    org.register_oauth_client(
        "jwt-sandbox", certificate_pem=certificate, username=USERNAME, audience="https://test.salesforce.com"
    )
    auth = {
        "username": USERNAME,
        "consumer_key": "jwt-sandbox",
        "private_key_file": str(key_file),
        "domain": "acme.my",
        "token_url": f"{org.instance_url}/services/oauth2/token",
    }
    with pytest.raises(AuthError) as caught:  # a production audience for a sandbox app
        log_in(settings(org, **auth))
    assert (caught.value.code, caught.value.crm_message) == ("invalid_grant", "audience is invalid")
    log_in(settings(org, **auth, jwt_audience="https://test.salesforce.com"))


@pytest.mark.parametrize(
    ("auth", "url"),
    [
        (
            {"consumer_key": "k", "consumer_secret": "s", "domain": "acme.my"},
            "https://acme.my.salesforce.com/services/oauth2/token",
        ),
        (
            {"username": USERNAME, "consumer_key": "k", "domain": "acme.my"},
            "https://acme.my.salesforce.com/services/oauth2/token",
        ),
        ({"username": USERNAME, "consumer_key": "k"}, "https://login.salesforce.com/services/oauth2/token"),
    ],
)
def test_default_token_endpoints(
    org: SalesforceEmulator, key_pair: tuple[Path, bytes], auth: dict[str, Any], url: str
) -> None:
    """Without token_url: the My Domain's token endpoint (JWT keeps aud = login), answered in-process."""
    if "consumer_secret" not in auth:
        auth = {**auth, "private_key_file": str(key_pair[0])}
    org.add_session("default-url-token")
    with responses.RequestsMock(passthru_prefixes=(org.instance_url,)) as mock:
        mock.add(
            responses.POST,
            url,
            json={
                "access_token": "default-url-token",
                "instance_url": org.instance_url,
                "token_type": "Bearer",
                "id": "https://login.salesforce.com/id/x/y",
            },
        )
        log_in(settings(org, **auth))
        body = str(mock.calls[0].request.body)
    if "assertion=" in body:
        assertion = body.split("assertion=")[1].split("&")[0]
        assert jwt.decode(assertion, options={"verify_signature": False})["aud"] == "https://login.salesforce.com"


@pytest.mark.parametrize(
    ("auth", "version", "expected"),
    [
        ({"username": "u", "password": "p", "security_token": "t"}, "62.0", "warning"),
        ({"username": "u", "password": "p"}, "64.0", "warning"),
        ({"username": "u", "password": "p", "security_token": "t"}, "65.0", "error"),
        ({"username": "u", "password": "p", "consumer_key": "k", "consumer_secret": "s"}, "65.0", None),
        ({"username": "u", "consumer_key": "k", "private_key_file": "k.pem"}, "65.0", None),
        ({"consumer_key": "k", "consumer_secret": "s", "domain": "acme.my"}, "62.0", None),
        ({"session_id": "x"}, "62.0", None),
    ],
)
def test_soap_login_is_flagged(auth: dict[str, Any], version: str, expected: str | None) -> None:
    found = login_findings(
        SalesforceSinkSettings(
            type="salesforce", instance_url="https://acme.my.salesforce.com", api_version=version, auth=auth
        ),
        "sf",
    )
    assert [level for level, _ in found] == ([expected] if expected else [])
    if expected:
        assert "SOAP API login()" in found[0][1] and "JWT bearer" in found[0][1] and "client credentials" in found[0][1]


def test_validate_prints_the_soap_login_warning(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "receiver": {"auth": {"tokens": ["t"]}},
                "sinks": {
                    "sf": {
                        "type": "salesforce",
                        "instance_url": "https://acme.my.salesforce.com",
                        "auth": {"username": "u", "password": "p", "security_token": "t"},
                    }
                },
            }
        )
    )
    result = CliRunner().invoke(main, ["validate", "--config", str(path), "--offline"])
    assert result.exit_code == 0 and "warning: sinks.sf.auth: username + password + security_token" in result.stderr


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            400,
            [
                {
                    "errorCode": "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
                    "message": (
                        "TwoXTrigger: execution of AfterUpdate caused by: System.DmlException: Update failed. First exception on row "
                        "0; first error: UNABLE_TO_LOCK_ROW, unable to obtain exclusive access to this record: []"
                    ),
                }
            ],
            TransientError,
        ),
        (
            400,
            [{"errorCode": "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", "message": "Validation: Phone is required"}],
            PermanentError,
        ),
        (400, [{"errorCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access"}], TransientError),
        (
            400,
            [{"errorCode": "INSUFFICIENT_ACCESS_OR_READONLY", "message": "insufficient access rights"}],
            PermanentError,
        ),
        (403, [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}], RateLimited),
        (401, [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}], AuthError),
        (503, "Service Unavailable", TransientError),
    ],
)
def test_classification(status: int, body: Any, kind: type[SinkError]) -> None:
    assert type(classify(status, body, where="test")) is kind


def test_a_lock_inside_a_trigger_is_retried_not_dead_lettered(org: SalesforceEmulator) -> None:
    org.fail_next(
        error_code="CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
        message=(
            "TwoXTrigger: execution of AfterUpdate caused by: System.DmlException: Update failed. first error: "
            "UNABLE_TO_LOCK_ROW, unable to obtain exclusive access to this record: []"
        ),
        path_contains="/sobjects/Contact",
    )
    connection = SalesforceConnection(
        "sf",
        SalesforceSinkSettings(
            type="salesforce", instance_url=org.instance_url, ca_bundle=org.ca_file, auth={"session_id": org.session_id}
        ),
    )
    connection.open(_Gate())
    john = org.seed_ids["contact_john"]
    with pytest.raises(TransientError) as caught:
        connection.call(lambda sf: sf.Contact.update(john, {"Title": "x"}), where="update")
    assert caught.value.code == "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY" and not isinstance(caught.value, RateLimited)
    connection.call(lambda sf: sf.Contact.update(john, {"Title": "x"}), where="update")  # the retry goes through
