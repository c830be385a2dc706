"""The LWA client against the emulator over loopback: shapes, headers, every failure."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import urllib3
from social_core.exceptions import (
    AuthCredentialError,
    AuthProviderError,
    AuthResponseError,
)

from bench.amazon import serve_https
from social_amazon_link.emulator import EmulatorServer
from social_amazon_link.errors import (
    AmazonBadResponse,
    AmazonError,
    AmazonUnavailable,
    ClientMisconfigured,
    InvalidGrant,
    InvalidToken,
    WrongAudience,
)
from social_amazon_link.lwa import LWAClient, parse_profile
from tests.conftest import CLIENT_ID

ADA = "amzn1.account.AE7ADALOVELACE0001"


@pytest.fixture
def ada(lwa_emulator: Any) -> str:
    lwa_emulator.add_identity(ADA, "Ada Lovelace", "ada@example.com", postal_code="98101")
    return ADA


@pytest.fixture
def client(lwa_emulator: Any) -> LWAClient:
    lwa = LWAClient(lwa_emulator.url, timeout=0.5)
    yield lwa
    lwa.close()


def test_profile_sends_the_token_in_the_header_only(client, lwa_emulator, ada):
    token = lwa_emulator.mint_token(CLIENT_ID, ada, scope="profile postal_code")
    profile = client.profile(token)
    assert profile.as_dict() == {
        "user_id": ADA,
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "postal_code": "98101",
    }
    stats = lwa_emulator.stats()
    assert stats["requests"]["profile"] == 1
    assert stats["token_in_query"] == 0


def test_user_id_scope_returns_the_user_id_alone(client, lwa_emulator, ada):
    token = lwa_emulator.mint_token(CLIENT_ID, ada, scope="profile:user_id")
    assert client.profile(token).as_dict() == {"user_id": ADA}


def test_verified_profile_checks_audience_and_reuses_connections(client, lwa_emulator, ada):
    token = lwa_emulator.mint_token(CLIENT_ID, ada)
    for _ in range(3):
        assert client.verified_profile(token, CLIENT_ID).user_id == ADA
    stats = lwa_emulator.stats()
    assert stats["requests"]["tokeninfo"] == 3
    assert stats["requests"]["profile"] == 3
    # Tokeninfo and profile run side by side: two kept-alive connections,
    # whatever the number of sign-ins.
    assert stats["connections"] <= 2


def test_token_of_another_app_is_wrong_audience(client, lwa_emulator, ada):
    token = lwa_emulator.mint_token("amzn1.application-oa2-client.someoneelse", ada)
    with pytest.raises(WrongAudience) as caught:
        client.verified_profile(token, CLIENT_ID)
    assert caught.value.code == "wrong_audience"
    assert isinstance(caught.value, AuthCredentialError)


def test_wrong_audience_wins_over_a_failing_profile(client, lwa_emulator, ada):
    token = lwa_emulator.mint_token("amzn1.application-oa2-client.someoneelse", ada)
    lwa_emulator.fault("profile", status=503)
    with pytest.raises(WrongAudience):
        client.verified_profile(token, CLIENT_ID)


def test_expired_token_is_invalid_token(client, lwa_emulator, ada):
    token = lwa_emulator.mint_token(CLIENT_ID, ada, expires_in=0)
    with pytest.raises(InvalidToken) as caught:
        client.verified_profile(token, CLIENT_ID)
    assert (caught.value.code, caught.value.http_status) == ("invalid_token", 401)


def test_legacy_profile_shape_is_understood():
    profile = parse_profile(
        {"Profile": {"CustomerId": ADA, "Name": "Ada", "PrimaryEmail": "ada@example.com"}}
    )
    assert profile.as_dict() == {"user_id": ADA, "name": "Ada", "email": "ada@example.com"}


# Every way the profile call can fail, and the error it must become.
PROFILE_FAILURES = [
    (
        {"status": 400, "body": {"error": "invalid_token", "error_description": "bad"}},
        InvalidToken,
        "invalid_token",
        "invalid_token",
    ),
    ({"status": 401, "body": {"message": "no"}}, InvalidToken, "invalid_token", "http_401"),
    (
        {"status": 403, "body": {"error": "insufficient_scope"}},
        InvalidToken,
        "invalid_token",
        "insufficient_scope",
    ),
    (
        {"status": 429, "body": {"error": "throttled"}},
        AmazonUnavailable,
        "amazon_unavailable",
        "rate_limited",
    ),
    (
        {"status": 500, "body": "Internal error"},
        AmazonUnavailable,
        "amazon_unavailable",
        "http_500",
    ),
    (
        {"status": 503, "body": "Service Unavailable"},
        AmazonUnavailable,
        "amazon_unavailable",
        "http_503",
    ),
    ({"delay_ms": 1500}, AmazonUnavailable, "amazon_unavailable", "timeout"),
    ({"drop": True}, AmazonUnavailable, "amazon_unavailable", "connection_failed"),
    (
        {"status": 200, "body": "<html>hello</html>"},
        AmazonBadResponse,
        "amazon_unavailable",
        "not_json",
    ),
    ({"status": 200, "body": ["user_id"]}, AmazonBadResponse, "amazon_unavailable", "bad_shape"),
    (
        {"status": 200, "body": {"name": "No Id"}},
        AmazonBadResponse,
        "amazon_unavailable",
        "missing_user_id",
    ),
    (
        {"status": 200, "body": {"user_id": "amzn1.account.<script>"}},
        AmazonBadResponse,
        "amazon_unavailable",
        "invalid_user_id",
    ),
    (
        {"status": 200, "body": {"user_id": 12345}},
        AmazonBadResponse,
        "amazon_unavailable",
        "invalid_user_id",
    ),
    (
        {"status": 200, "body": {"user_id": ADA, "email": ["a@b.c"]}},
        AmazonBadResponse,
        "amazon_unavailable",
        "bad_email",
    ),
]


@pytest.mark.parametrize(("fault", "kind", "code", "reason"), PROFILE_FAILURES)
def test_each_profile_failure_has_its_own_error(
    client, lwa_emulator, ada, fault, kind, code, reason
):
    token = lwa_emulator.mint_token(CLIENT_ID, ada)
    lwa_emulator.fault("profile", **fault)
    with pytest.raises(kind) as caught:
        client.profile(token)
    error = caught.value
    assert (error.code, error.reason) == (code, reason)
    assert isinstance(error, AmazonError)
    assert token not in str(error) and token not in repr(error.args)


def test_unavailable_errors_are_social_core_provider_errors():
    assert issubclass(AmazonUnavailable, AuthProviderError)
    assert issubclass(AmazonBadResponse, AuthResponseError)
    assert issubclass(InvalidToken, AuthCredentialError)


def test_connection_refused_is_amazon_unavailable():
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    lwa = LWAClient(f"http://127.0.0.1:{port}", timeout=0.5)
    with pytest.raises(AmazonUnavailable) as caught:
        lwa.profile("Atza|whatever")
    assert caught.value.reason == "connection_failed"
    assert "Atza|whatever" not in str(caught.value.__cause__)


@pytest.mark.parametrize(
    ("body", "status", "kind", "reason"),
    [
        (
            {"error": "invalid_grant", "error_description": "used"},
            400,
            InvalidGrant,
            "invalid_grant",
        ),
        ({"error": "invalid_client"}, 401, ClientMisconfigured, "invalid_client"),
        ({"error": "unsupported_grant_type"}, 400, ClientMisconfigured, "unsupported_grant_type"),
        ({"error": "invalid_request"}, 400, ClientMisconfigured, "invalid_request"),
        ({"token_type": "bearer"}, 200, AmazonBadResponse, "missing_access_token"),
    ],
)
def test_token_endpoint_errors(client, lwa_emulator, body, status, kind, reason):
    lwa_emulator.fault("token", status=status, body=body)
    with pytest.raises(kind) as caught:
        client.request_token({"grant_type": "authorization_code", "code": "x"})
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"user_id": ADA}, "missing_aud"),
        # Without the user_id, nothing ties the token to the profile's person.
        ({"aud": CLIENT_ID}, "missing_user_id"),
        ({"aud": CLIENT_ID, "user_id": "amzn1.account.AEOTHERPERSON0001"}, "user_id_mismatch"),
    ],
)
def test_tokeninfo_must_name_our_app_and_the_profiles_person(
    client, lwa_emulator, ada, body, reason
):
    token = lwa_emulator.mint_token(CLIENT_ID, ada)
    lwa_emulator.fault("tokeninfo", status=200, body=body)
    with pytest.raises(AmazonBadResponse) as caught:
        client.verified_profile(token, CLIENT_ID)
    assert caught.value.reason == reason


def test_tokens_are_redacted_from_debug_logs(client, lwa_emulator, ada, caplog):
    token = lwa_emulator.mint_token(CLIENT_ID, ada)
    with caplog.at_level("DEBUG"):
        client.verified_profile(token, CLIENT_ID)
    assert "tokeninfo" in caplog.text
    assert "access_token=<redacted>" in caplog.text
    # The query string carries the token percent-encoded ("Atza%7C..."):
    # look for its secret part, which encoding leaves as it is.
    assert token.split("|", 1)[1] not in caplog.text


def test_an_explicit_ca_bundle_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/from-the-environment.pem")
    explicit = LWAClient("https://api.amazon.com", verify="/srv/our-ca.pem")
    settings = explicit.session.merge_environment_settings(
        explicit.profile_url, {}, None, None, None
    )
    assert settings["verify"] == "/srv/our-ca.pem"
    # Left at the default, the environment's bundle applies (read once).
    default = LWAClient("https://api.amazon.com")
    assert default.session.verify == "/etc/ssl/from-the-environment.pem"
    assert LWAClient("https://api.amazon.com", verify=False).session.verify is False


def test_proxies_setting_routes_the_calls(lwa_emulator, ada):
    # The emulator stands in for the proxy: a host that does not resolve is
    # reached only if the request goes through it.
    token = lwa_emulator.mint_token(CLIENT_ID, ada)
    direct = LWAClient("http://amazon.invalid", timeout=0.5)
    proxied = LWAClient("http://amazon.invalid", timeout=0.5, proxies={"http": lwa_emulator.url})
    try:
        with pytest.raises(AmazonUnavailable):
            direct.profile(token)
        assert proxied.profile(token).user_id == ADA
    finally:
        direct.close()
        proxied.close()


def test_a_busy_tokeninfo_pool_does_not_stretch_a_sign_in_past_the_timeout(
    client, lwa_emulator, ada
):
    import threading

    from social_amazon_link import lwa

    token = lwa_emulator.mint_token(CLIENT_ID, ada)
    release = threading.Event()
    # Every worker busy elsewhere (more sign-ins than workers, Amazon slow).
    busy = [lwa._executor().submit(release.wait) for _ in range(lwa.EXECUTOR_WORKERS)]
    try:
        started = time.monotonic()
        with pytest.raises(AmazonUnavailable) as caught:
            client.verified_profile(token, CLIENT_ID)
        # Within the client's timeout (0.5 s), not a connect and a read timeout more.
        assert time.monotonic() - started < 0.5 + 0.75
        assert (caught.value.reason, caught.value.stage) == ("timeout", "token_validation")
    finally:
        release.set()
    for task in busy:
        task.result(timeout=5)
    # The pool is free again: the next sign-in is answered.
    assert client.verified_profile(token, CLIENT_ID).user_id == ADA


@pytest.fixture
def https_emulator(lwa_emulator: Any, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The same emulator served over HTTPS with a throwaway CA: (its URL, the CA's bundle)."""
    ca = trustme.CA()
    chain, bundle = tmp_path / "chain.pem", tmp_path / "ca.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(chain))
    ca.cert_pem.write_to_path(str(bundle))
    server = EmulatorServer(lwa_emulator.server.app)
    serve_https(server, str(chain))
    with server.start():
        yield server.url.replace("http://", "https://", 1), str(bundle)


def test_https_calls_check_amazons_certificate(https_emulator, lwa_emulator, ada):
    url, bundle = https_emulator
    token = lwa_emulator.mint_token(CLIENT_ID, ada)
    trusted = LWAClient(url, timeout=2, verify=bundle)
    untrusted = LWAClient(url, timeout=2)  # the public CAs only
    unchecked = LWAClient(url, timeout=2, verify=False)
    try:
        # Both calls of a sign-in, tokeninfo and profile, over TLS.
        assert trusted.verified_profile(token, CLIENT_ID).user_id == ada
        for call in (untrusted.profile, untrusted.tokeninfo):
            with pytest.raises(AmazonUnavailable) as caught:
                call(token)
            assert caught.value.reason == "tls_error"
        with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
            assert unchecked.profile(token).user_id == ada
    finally:
        for client in (trusted, untrusted, unchecked):
            client.close()
