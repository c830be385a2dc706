"""Rule 1 over HTTP: the JSON API takes a token or a password over HTTPS only.

Plain HTTP is accepted from loopback (a developer's machine, a proxy on the
same host) and when ``SOCIAL_AUTH_AMAZON_BEHIND_TLS_PROXY`` says a proxy in
front ends TLS; from anywhere else it is ``insecure_transport`` (400), before
anything reaches Amazon or the database. The sample app is served for real on
this machine's own non-loopback address (plain and TLS), and through Flask's
test client with the client address and scheme set.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from werkzeug.test import Client

from tests.conftest import CLIENT_ID, Served
from tests.test_api import (
    ADA,
    GRACE,
    PASSWORD,
    amazon_calls,
    identities,  # noqa: F401 (the fixture below)
    partials,
    users,
)

pytestmark = pytest.mark.usefixtures("identities")

INSECURE = {
    "error": "insecure_transport",
    "message": "Sign-in tokens are accepted over HTTPS only.",
}


def local_address() -> str:
    """This machine's address on its network: not loopback, yet served right here."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.123", 9))  # picks the outgoing interface; sends nothing
        address = str(probe.getsockname()[0])
    assert not ipaddress.ip_address(address).is_loopback, f"no network address ({address})"
    return address


@pytest.fixture
def listen() -> Iterator[Any]:
    """``listen(served, host, tls=False)``: the same app on ``host`` too; its base URL."""
    listeners: list[Served] = []

    def start(served: Served, host: str, *, tls: bool = False) -> str:
        listeners.append(Served(served.app, host, tls=tls))
        return listeners[-1].url

    yield start
    for listener in listeners:
        listener.close()


@pytest.fixture
def phone() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def post(phone: requests.Session, base: str, path: str, body: dict[str, Any]) -> Any:
    # verify=False: the TLS listener's certificate is made up on the spot.
    answer = phone.post(f"{base}/api/amazon/{path}", json=body, timeout=10, verify=False)
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Cache-Control"] == "no-store"
    return answer


def nothing_written(app: Served) -> bool:
    return users(app) == [] and app.links() == [] and partials(app) == [] and app.events() == []


# -- over the network ----------------------------------------------------------


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_a_token_over_plain_http_from_the_network_is_refused_and_over_tls_taken(
    serve_app, listen, phone, lwa_emulator
):
    app = serve_app()
    address = local_address()
    token = lwa_emulator.mint_token(CLIENT_ID, ADA)

    refused = post(phone, listen(app, address), "token", {"access_token": token})
    assert (refused.status_code, refused.json()) == (400, INSECURE)
    assert token not in refused.text
    assert amazon_calls(lwa_emulator) == {"tokeninfo": 0, "profile": 0}
    assert nothing_written(app)

    taken = post(phone, listen(app, address, tls=True), "token", {"access_token": token})
    assert taken.status_code == 200 and taken.json()["status"] == "authenticated"
    [(ada, _username, _email)] = users(app)
    assert app.links() == [(ada, ADA)]
    assert amazon_calls(lwa_emulator) == {"tokeninfo": 1, "profile": 1}


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_a_password_over_plain_http_from_the_network_is_refused_uncounted(
    serve_app, listen, phone, lwa_emulator
):
    app = serve_app()
    grace = app.add_user("grace", "grace@example.com", PASSWORD)
    address = local_address()
    secure, plain = listen(app, address, tls=True), listen(app, address)
    token = lwa_emulator.mint_token(CLIENT_ID, GRACE)
    paused = post(phone, secure, "token", {"access_token": token}).json()
    assert paused["status"] == "password_required"
    pause = paused["partial_token"]

    for password in ("wrong", PASSWORD):
        refused = post(phone, plain, "continue", {"partial_token": pause, "password": password})
        assert (refused.status_code, refused.json()) == (400, INSECURE)
    # Not checked, so not counted; the pause still waits for a proper answer.
    assert app.failures(grace) == 0 and app.events() == []
    assert partials(app) == [pause] and app.links() == []

    done = post(phone, secure, "continue", {"partial_token": pause, "password": PASSWORD})
    assert done.status_code == 200 and done.json()["user"]["id"] == grace
    assert app.links() == [(grace, GRACE)] and partials(app) == []


def test_behind_a_tls_proxy_plain_http_from_the_network_is_taken(
    serve_app, listen, phone, lwa_emulator
):
    app = serve_app(SOCIAL_AUTH_AMAZON_BEHIND_TLS_PROXY=True)
    token = lwa_emulator.mint_token(CLIENT_ID, ADA)
    taken = post(phone, listen(app, local_address()), "token", {"access_token": token})
    assert taken.status_code == 200 and taken.json()["status"] == "authenticated"
    assert len(users(app)) == 1 and len(app.links()) == 1


@pytest.mark.parametrize("target", ["127.0.0.1", "[::1]"])
def test_plain_http_from_loopback_is_taken_by_a_dual_stack_server(
    serve_app, listen, phone, lwa_emulator, target
):
    # Bound to "::", the server sees an IPv4 client as ::ffff:127.0.0.1.
    app = serve_app()
    port = listen(app, "::").rsplit(":", 1)[1]
    token = lwa_emulator.mint_token(CLIENT_ID, ADA)
    taken = post(phone, f"http://{target}:{port}", "token", {"access_token": token})
    assert taken.status_code == 200 and taken.json()["status"] == "authenticated"
    assert len(app.links()) == 1


# -- a WSGI test client: the address and scheme as a server would set them -----


def client_post(app: Served, path: str, body: dict[str, Any], **client: Any) -> Any:
    answer = Client(app.app).post(f"/api/amazon/{path}", json=body, **client)
    assert answer.headers["Cache-Control"] == "no-store"
    return answer


ELSEWHERE = {"base_url": "http://app.example", "environ_base": {"REMOTE_ADDR": "203.0.113.7"}}


@pytest.mark.parametrize("remote_addr", ["203.0.113.7", "2001:db8::7", "10.1.2.3"])
def test_both_endpoints_refuse_plain_http_from_another_host(serve_app, lwa_emulator, remote_addr):
    app = serve_app()
    grace = app.add_user("grace", "grace@example.com", PASSWORD)
    client = {**ELSEWHERE, "environ_base": {"REMOTE_ADDR": remote_addr}}
    token = lwa_emulator.mint_token(CLIENT_ID, GRACE)
    refused = client_post(app, "token", {"access_token": token}, **client)
    assert (refused.status_code, refused.get_json()) == (400, INSECURE)
    body = {"partial_token": "0" * 32, "password": PASSWORD}
    refused = client_post(app, "continue", body, **client)
    assert (refused.status_code, refused.get_json()) == (400, INSECURE)
    assert amazon_calls(lwa_emulator) == {"tokeninfo": 0, "profile": 0}
    assert users(app) == [(grace, "grace", "grace@example.com")]
    assert app.links() == [] and partials(app) == [] and app.failures(grace) == 0


@pytest.mark.parametrize(
    ("client", "settings"),
    [
        # HTTPS, from anywhere.
        ({**ELSEWHERE, "base_url": "https://app.example"}, {}),
        # Plain HTTP from loopback, IPv4 and IPv6.
        ({"base_url": "http://localhost", "environ_base": {"REMOTE_ADDR": "127.0.0.1"}}, {}),
        ({"base_url": "http://localhost", "environ_base": {"REMOTE_ADDR": "::1"}}, {}),
        # Plain HTTP from elsewhere, to an app behind a proxy that ends TLS.
        (ELSEWHERE, {"SOCIAL_AUTH_AMAZON_BEHIND_TLS_PROXY": True}),
    ],
)
def test_the_same_request_is_taken_over_https_from_loopback_or_behind_a_proxy(
    serve_app, lwa_emulator, client, settings
):
    app = serve_app(**settings)
    grace = app.add_user("grace", "grace@example.com", PASSWORD)
    token = lwa_emulator.mint_token(CLIENT_ID, GRACE)
    test_client = Client(app.app)
    paused = test_client.post("/api/amazon/token", json={"access_token": token}, **client)
    assert paused.status_code == 200
    pause = paused.get_json()["partial_token"]
    body = {"partial_token": pause, "password": PASSWORD}
    done = test_client.post("/api/amazon/continue", json=body, **client)
    assert done.status_code == 200 and done.get_json()["user"]["id"] == grace
    assert app.links() == [(grace, GRACE)] and partials(app) == []
    assert amazon_calls(lwa_emulator) == {"tokeninfo": 1, "profile": 1}
