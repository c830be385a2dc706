"""What a person does in a browser, as plain HTTP (the browser tests use Chromium)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from tests.conftest import Served
from tests.forms import first_form


def start_sign_in(browser: requests.Session, app: Served) -> str:
    """Click "Login with Amazon": returns the authorize URL the app sent us to."""
    response = app.start_sign_in(browser)
    assert response.status_code == 302
    return response.headers["Location"]


def consent(browser: requests.Session, authorize_url: str, user_id: str, decision: str) -> str:
    """On the (emulated) Amazon page, pick the identity and decide; returns the callback URL."""
    page = browser.get(authorize_url)
    assert page.status_code == 200
    action, fields, radios = first_form(page.text, authorize_url)
    assert user_id in radios["user_id"]
    response = browser.post(
        action, data={**fields, "user_id": user_id, "decision": decision}, allow_redirects=False
    )
    assert response.status_code == 302
    return response.headers["Location"]


def sign_in(browser, app, user_id, decision="allow") -> requests.Response:
    callback = consent(browser, start_sign_in(browser, app), user_id, decision)
    assert callback.startswith(f"{app.url}/complete/amazon/")
    return browser.get(callback)


def answer_prompt(
    browser: requests.Session, page: requests.Response, **fields: str
) -> requests.Response:
    """Fill the prompt page's form (password or registration) and submit it."""
    action, values, _radios = first_form(page.text, page.url)
    return browser.post(action, data={**values, **fields})


def api_sign_ins_at_once(urls: list[str], tokens: list[str]) -> list[tuple[int, dict[str, Any]]]:
    """Each token sent to ``urls[n % len(urls)]``'s ``/api/amazon/token`` at the
    same moment, each from its own phone: (status, body) per token, in order."""
    start = threading.Barrier(len(tokens))

    def sign_in_once(n: int) -> tuple[int, dict[str, Any]]:
        with requests.Session() as phone:
            start.wait()
            answer = phone.post(
                f"{urls[n % len(urls)]}/api/amazon/token",
                json={"access_token": tokens[n]},
                timeout=60,
            )
            return answer.status_code, dict(answer.json())

    with ThreadPoolExecutor(len(tokens)) as pool:
        return list(pool.map(sign_in_once, range(len(tokens))))
