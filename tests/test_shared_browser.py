"""A shared browser: one person's paused sign-in must never finish as the next person's.

Someone starts Login with Amazon on a shared computer, stops at the password
prompt (or the prefilled registration form) and leaves; the next person signs
in locally in that browser. Their posting the old prompt must not link the
first person's Amazon account to their own account. A pause remembers who was
signed in when it began and is refused (``invalid_partial``) to anyone else;
the app's own sign-in and sign-out end it and rotate the CSRF token.

Also here: the callback recognises a new sign-in by its OAuth2 state, not by
field names (an app's own paused form may have a ``code`` field), and the
remember-me cookie's flags.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from flask_wtf.csrf import CSRFProtect
from social_amazon_link.pipelines import (
    AMAZON_PIPELINE,
    match_by_email_require_password,
    prefill_registration,
)
from social_amazon_link.pipelines.pause import (
    ANSWER_KEY,
    DONE,
    PROMPT_KEY,
    SIGNED_IN_KEY,
    answer_of,
    pause,
    resumed_prompt,
)
from social_core.pipeline.partial import partial
from social_flask.utils import load_backend, load_strategy
from sqlalchemy import select

from demo.seed import GRACE_ID
from social_amazon_link.accounts import password_checker
from social_amazon_link.errors import InvalidPartial, WrongPassword
from tests import sample_app
from tests.browser_support import DemoSite
from tests.conftest import CLIENT_ID, Served
from tests.flows import answer_prompt, consent, sign_in, start_sign_in
from tests.forms import first_form

GRACE = "amzn1.account.AEGRACEHOPPER00001"
ADA = "amzn1.account.AEADALOVELACE00001"
PASSWORD = "correct horse battery"
ALAN_PASSWORD = "alan password"
INVITE = "WELCOME-42"
#: The header the test app's request loader signs a user in by (an API token,
#: say): a sign-in that fires no Flask-Login signal, so that only the pause's
#: own binding stands between it and someone else's paused sign-in.
AS_USER = "X-Test-User"


@pytest.fixture
def identities(lwa_emulator: Any) -> None:
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    lwa_emulator.add_identity(ADA, "Ada Lovelace", "ada@example.com")


@pytest.fixture
def shared(serve_app: Any, identities: None) -> Any:
    """The sample app with a sign-out view and a header sign-in, and two accounts."""

    def start(**settings: Any) -> Served:
        app = serve_app(**settings)
        # The Django sample app reads the header always (tests/django_app/middleware.py).
        if app.framework == "flask":
            db = app.app.extensions["test_session"]

            @app.app.login_manager.request_loader
            def user_from_header(req: Any) -> Any:
                name = req.headers.get(AS_USER)
                if not name:
                    return None
                user = sample_app.User
                return db.scalars(select(user).where(user.username == name)).one()

        app.add_user("grace", "grace@example.com", PASSWORD)
        app.add_user("alan", "alan@example.com", ALAN_PASSWORD)
        return app

    return start


def users(app: Served) -> list[str]:
    return [r.username for r in app.query("SELECT username FROM users ORDER BY id")]


def partials(app: Served) -> int:
    return len(app.query("SELECT id FROM social_auth_partial"))


def user_id(app: Served, username: str) -> int:
    [row] = app.query("SELECT id FROM users WHERE username = :u", u=username)
    return int(row.id)


def me(browser: requests.Session, app: Served, **headers: str) -> Any:
    return browser.get(f"{app.url}/me", headers=headers).json()


def local_sign_in(browser: requests.Session, app: Served, username: str, password: str) -> None:
    """The app's own sign-in view (Flask-Login's login_user)."""
    answer = browser.post(
        f"{app.url}/test-login",
        data={"username": username, "password": password, "csrf_token": csrf(browser, app)},
    )
    assert answer.json()["authenticated"] is True


def csrf(browser: requests.Session, app: Served) -> str:
    """The token a page of the app would put in a form now."""
    token: str = browser.get(f"{app.url}/csrf-token").json()["csrf_token"]
    return token


def refused(page: requests.Response) -> bool:
    return page.status_code == 400 and 'data-error-code="invalid_partial"' in page.text


def api(
    phone: requests.Session, app: Served, path: str, body: Any, **headers: str
) -> requests.Response:
    return phone.post(f"{app.url}/api/amazon/{path}", json=body, headers=headers, timeout=10)


def registration_pause(app: Served) -> None:
    """Ada's sign-in will stop on the registration form: her username is taken."""
    app.add_user("AdaLovelace", "someone.else@example.com", "x-password")


# -- the pages ----------------------------------------------------------------


def test_next_person_signed_in_locally_cannot_answer_the_password_prompt(shared, browser):
    app = shared()
    prompt = sign_in(browser, app, GRACE)  # Grace stops here and walks away
    assert "/link/amazon/password" in prompt.url and partials(app) == 1

    local_sign_in(browser, app, "alan", ALAN_PASSWORD)
    assert partials(app) == 0  # Alan's sign-in ended the pause
    # The page left open, as it is; then with a fresh CSRF token.
    assert refused(answer_prompt(browser, prompt, password="anything"))
    action, values, _ = first_form(prompt.text, prompt.url)
    fresh = {**values, "csrf_token": csrf(browser, app), "password": "anything"}
    assert refused(browser.post(action, data=fresh))

    assert app.links() == [] and partials(app) == 0
    assert me(browser, app)["username"] == "alan"
    assert ("linked", user_id(app, "alan"), GRACE, "signed_in") not in app.events()


def test_next_person_signed_in_locally_cannot_submit_the_registration_form(shared, browser):
    app = shared()
    registration_pause(app)
    form = sign_in(browser, app, ADA)
    assert "/link/amazon/register" in form.url
    before = users(app)

    local_sign_in(browser, app, "alan", ALAN_PASSWORD)
    action, values, _ = first_form(form.text, form.url)
    empty = {**values, "csrf_token": csrf(browser, app), "username": "", "email": "", "name": ""}
    assert refused(browser.post(action, data=empty))

    assert app.links() == [] and partials(app) == 0
    assert users(app) == before
    assert me(browser, app)["username"] == "alan"


def test_a_pause_is_refused_to_someone_signed_in_since_even_without_a_sign_in_signal(
    shared, browser
):
    # Alan is signed in by a header (no login_user, no signal): the pause's
    # own record of who started it is all that refuses him.
    app = shared()
    prompt = sign_in(browser, app, GRACE)
    action, values, _ = first_form(prompt.text, prompt.url)
    answer = browser.post(action, data={**values, "password": "x"}, headers={AS_USER: "alan"})
    assert refused(answer)
    assert app.links() == [] and partials(app) == 0

    registration_pause(app)
    form = sign_in(browser, app, ADA)
    action, values, _ = first_form(form.text, form.url)
    before = users(app)
    answer = browser.post(
        action, data={**values, "username": "", "email": "", "name": ""}, headers={AS_USER: "alan"}
    )
    assert refused(answer)
    assert app.links() == [] and partials(app) == 0 and users(app) == before


def test_sign_out_ends_a_pause(shared, browser):
    app = shared(SOCIAL_AUTH_AMAZON_PIPELINE=CONFIRM_WHILE_SIGNED_IN)
    local_sign_in(browser, app, "alan", ALAN_PASSWORD)
    prompt = sign_in(browser, app, GRACE)  # Alan links Amazon: his password first
    assert "/link/amazon/password" in prompt.url and partials(app) == 1

    browser.post(f"{app.url}/test-logout")
    assert partials(app) == 0
    assert refused(answer_prompt(browser, prompt, password=ALAN_PASSWORD))
    assert app.links() == [] and me(browser, app) == {"authenticated": False}


def test_a_pause_started_signed_in_is_refused_to_anyone_else(shared, browser):
    app = shared(**ALAN_CONFIRMS)
    alan = {AS_USER: "alan"}

    def paused_by_alan() -> requests.Response:
        authorize = app.start_sign_in(browser, **alan)
        callback = consent(browser, authorize.headers["Location"], GRACE, "allow")
        prompt = browser.get(callback, headers=alan)
        assert "/link/amazon/password" in prompt.url and partials(app) == 1
        return prompt

    def resume(prompt: requests.Response, **headers: str) -> requests.Response:
        action, values, _ = first_form(prompt.text, prompt.url)
        return browser.post(action, data={**values, "password": ALAN_PASSWORD}, headers=headers)

    assert refused(resume(paused_by_alan()))  # signed out now
    assert partials(app) == 0
    assert refused(resume(paused_by_alan(), **{AS_USER: "grace"}))  # someone else
    assert partials(app) == 0
    assert app.links() == []

    done = resume(paused_by_alan(), **alan)  # Alan himself
    assert done.json()["username"] == "alan"
    assert app.links() == [(user_id(app, "alan"), GRACE)] and partials(app) == 0


@pytest.mark.flask_only  # calls the steps in a Flask request context
@pytest.mark.parametrize("step", [match_by_email_require_password, prefill_registration])
def test_a_step_never_takes_someone_signed_in_now_for_proof(shared, step):
    # Behind any way of resuming (the integration refuses first): a step
    # resumed with a signed-in user, for a prompt that paused with nobody
    # signed in, is refused before it looks at the answer.
    app = shared()
    with app.app.test_request_context("/"):
        strategy = load_strategy()
        backend = load_backend(strategy, "amazon", redirect_uri="/complete/amazon/")
        alan = strategy.storage.user.get_user(user_id(app, "alan"))
        kind = "password" if step is match_by_email_require_password else "registration"
        prompt = {"kind": kind, "paused_at": time.time(), SIGNED_IN_KEY: None}
        details = {"email": "grace@example.com", "username": "grace2"}
        with pytest.raises(InvalidPartial) as refusal:
            step(
                strategy,
                backend,
                5,
                details,
                user=alan,
                uid=GRACE,
                **{PROMPT_KEY: prompt, ANSWER_KEY: {"password": "x", "username": "x"}},
            )
        assert refusal.value.reason == "other_user"
        # The same prompt started by Alan himself, or another step's prompt:
        # not this step's to refuse.
        other = {**prompt, "kind": "terms"}
        for waiting in ({**prompt, SIGNED_IN_KEY: str(alan.id)}, other):
            result = step(
                strategy, backend, 5, details, user=alan, uid=GRACE, **{PROMPT_KEY: waiting}
            )
            assert result == DONE
    assert app.links() == [] and app.failures(user_id(app, "grace")) == 0


def test_on_the_demo_the_next_person_cannot_finish_the_previous_persons_sign_in(
    database_url, tmp_path, monkeypatch, browser
):
    # The story the outside check played on the demo itself: Grace stops on
    # the password prompt; Alan signs in with the demo's own sign-in page.
    monkeypatch.chdir(tmp_path)  # the demo makes ./instance
    site = DemoSite.start(database_url)
    try:
        authorize = browser.get(f"{site.url}/login/amazon/", allow_redirects=False)
        prompt = browser.get(consent(browser, authorize.headers["Location"], GRACE_ID, "allow"))
        assert "/link/amazon/password" in prompt.url

        login = browser.get(f"{site.url}/login")
        action, values, _ = first_form(login.text, login.url)
        form = {**values, "username": "alan", "password": "alan-password-1"}
        assert browser.post(action, data=form).url == f"{site.url}/account"

        assert refused(answer_prompt(browser, prompt, password="anything"))
        assert GRACE_ID not in site.amazon_links()
        assert site.query("SELECT id FROM social_auth_partial") == []
        assert 'id="account-username">alan<' in browser.get(f"{site.url}/account").text
    finally:
        site.close()


# -- the JSON API ----------------------------------------------------------------


def test_api_next_person_signed_in_locally_cannot_answer_the_password_prompt(
    shared, browser, lwa_emulator
):
    app = shared()
    token = lwa_emulator.mint_token(CLIENT_ID, GRACE)
    paused = api(browser, app, "token", {"access_token": token}).json()
    assert paused["status"] == "password_required"

    local_sign_in(browser, app, "alan", ALAN_PASSWORD)
    answer = api(
        browser, app, "continue", {"partial_token": paused["partial_token"], "password": "x"}
    )
    assert (answer.status_code, answer.json()) == (400, {"error": "invalid_partial"})
    assert app.links() == [] and partials(app) == 0
    assert me(browser, app)["username"] == "alan"


def test_api_next_person_cannot_submit_the_registration(shared, browser, lwa_emulator):
    app = shared()
    registration_pause(app)
    before = users(app)
    for who in ("signed in locally", "signed in by a header"):
        token = lwa_emulator.mint_token(CLIENT_ID, ADA)
        paused = api(browser, app, "token", {"access_token": token}).json()
        assert paused["status"] == "registration_required"
        headers = {AS_USER: "alan"}
        if who == "signed in locally":
            local_sign_in(browser, app, "alan", ALAN_PASSWORD)
            headers = {}
        empty = {"partial_token": paused["partial_token"], "username": "", "email": "", "name": ""}
        answer = api(browser, app, "continue", empty, **headers)
        assert (answer.status_code, answer.json()) == (400, {"error": "invalid_partial"}), who
        assert app.links() == [] and partials(app) == 0 and users(app) == before
        assert me(browser, app, **headers)["username"] == "alan"
        browser.post(f"{app.url}/test-logout")


def test_api_pause_started_signed_in_is_refused_to_anyone_else(shared, browser, lwa_emulator):
    app = shared(**ALAN_CONFIRMS)
    alan = {AS_USER: "alan"}

    def paused_by_alan() -> str:
        token = lwa_emulator.mint_token(CLIENT_ID, GRACE)
        paused = api(browser, app, "token", {"access_token": token}, **alan).json()
        assert paused["status"] == "password_required"
        return str(paused["partial_token"])

    for headers in ({}, {AS_USER: "grace"}):  # signed out now; someone else
        body = {"partial_token": paused_by_alan(), "password": ALAN_PASSWORD}
        answer = api(browser, app, "continue", body, **headers)
        assert (answer.status_code, answer.json()) == (400, {"error": "invalid_partial"})
        assert app.links() == [] and partials(app) == 0

    body = {"partial_token": paused_by_alan(), "password": ALAN_PASSWORD}
    done = api(browser, app, "continue", body, **alan)
    assert done.json()["user"]["username"] == "alan"
    assert app.links() == [(user_id(app, "alan"), GRACE)]


# -- sign-in and sign-out rotate the CSRF token ------------------------------------


@pytest.mark.flask_only  # the Flask integration's own token (Django's login rotates its own)
@pytest.mark.parametrize("flask_wtf", [False, True], ids=["own_token", "flask_wtf"])
def test_sign_in_and_sign_out_rotate_the_csrf_token(shared, browser, flask_wtf):
    app = shared()
    if flask_wtf:
        CSRFProtect(app.app)

    def disconnect(token: str) -> int:
        # A form of the app's that posts to the integration; its CSRF check
        # comes first (the sign-out leaves nobody to disconnect anyway).
        url = f"{app.url}/disconnect/amazon/"
        return browser.post(url, data={"csrf_token": token}, allow_redirects=False).status_code

    before = csrf(browser, app)
    local_sign_in(browser, app, "alan", ALAN_PASSWORD)
    signed_in = csrf(browser, app)
    assert signed_in != before
    assert disconnect(before) == 400  # the page left open before the sign-in
    assert disconnect(signed_in) == 302  # today's page

    logout = browser.post(f"{app.url}/test-logout", data={"csrf_token": csrf(browser, app)})
    assert logout.json() == {"authenticated": False}
    assert csrf(browser, app) not in (before, signed_in)
    assert disconnect(signed_in) == 400


# -- F12: a new sign-in is known by its OAuth2 state -------------------------------


@partial
def enter_invite_code(
    strategy: Any, backend: Any, *args: Any, current_partial: Any = None, **kwargs: Any
) -> Any:
    """An app's own paused step whose form has fields named like OAuth2's."""
    data = strategy.request_data()
    if (data.get("code"), data.get("state"), data.get("error")) == (INVITE, "CA", "none"):
        return None
    return strategy.redirect(f"/invite?partial_token={current_partial.token}")


INVITE_PIPELINE = (*AMAZON_PIPELINE, f"{__name__}.enter_invite_code")


def test_an_apps_own_form_with_a_code_field_resumes_through_the_callback(shared, browser):
    app = shared(SOCIAL_AUTH_AMAZON_PIPELINE=INVITE_PIPELINE)
    invite = sign_in(browser, app, ADA)
    token = invite.url.split("partial_token=")[1]
    assert "/invite?partial_token=" in invite.url and partials(app) == 1

    form = {"partial_token": token, "code": INVITE, "state": "CA", "error": "none"}
    done = browser.post(f"{app.url}/complete/amazon/", data=form)
    assert done.json()["username"] == "AdaLovelace"
    assert app.links() == [(user_id(app, "AdaLovelace"), ADA)] and partials(app) == 0


def test_amazons_redirect_back_still_ends_a_pause_left_waiting(shared, browser):
    app = shared(SOCIAL_AUTH_AMAZON_PIPELINE=INVITE_PIPELINE)
    grace_started = start_sign_in(browser, app)  # in one tab, not finished yet
    invite = sign_in(browser, app, ADA)  # in another: stops on the app's page
    ada_token = invite.url.split("partial_token=")[1]
    assert partials(app) == 1

    # Grace finishes at Amazon: that is a new sign-in (its state is one this
    # browser was given), which ends Ada's pause and goes its own way.
    back = browser.get(consent(browser, grace_started, GRACE, "allow"))
    assert "/link/amazon/password?partial_token=" in back.url
    [row] = app.query("SELECT token FROM social_auth_partial")
    assert row.token != ada_token and back.url.endswith(row.token)
    assert [uid for _, uid in app.links()] == [ADA]  # Ada's, written before her pause


def test_a_sign_in_started_before_a_local_sign_in_cannot_finish_after_it(shared, browser):
    # Grace is sent to Amazon and leaves; Alan signs in; Grace's consent page,
    # still open, is used: her Amazon account must not connect to Alan's.
    app = shared()
    started = start_sign_in(browser, app)
    local_sign_in(browser, app, "alan", ALAN_PASSWORD)
    page = browser.get(consent(browser, started, GRACE, "allow"))
    assert page.status_code == 400
    assert 'data-error-code="session_context_missing"' in page.text
    assert app.links() == [] and me(browser, app)["username"] == "alan"


# -- the remember-me cookie ----------------------------------------------------


@pytest.mark.flask_only  # Flask-Login's remember-me cookie
@pytest.mark.parametrize(("configured", "sent"), [(None, "Lax"), ("Strict", "Strict")])
def test_remember_me_cookie_is_samesite_and_httponly(shared, browser, configured, sent):
    app = shared(SOCIAL_AUTH_FIELDS_STORED_IN_SESSION=["keep"], REMEMBER_COOKIE_SAMESITE=configured)
    started = app.start_sign_in(browser, "?keep=1")
    callback = consent(browser, started.headers["Location"], ADA, "allow")
    signed_in = browser.get(callback, allow_redirects=False)
    assert signed_in.status_code == 302
    [cookie] = [
        value
        for value in signed_in.raw.headers.getlist("Set-Cookie")
        if value.startswith("remember_token=")
    ]
    assert f"SameSite={sent}" in cookie and "HttpOnly" in cookie


# -- a step of the app's that pauses while someone is signed in --------------------


def confirm_while_signed_in(
    strategy: Any, backend: Any, pipeline_index: int, *args: Any, user: Any = None, **kwargs: Any
) -> Any:
    """An app's own step: a signed-in user gives their password before Amazon is linked."""
    if user is None:
        return None
    if resumed_prompt(backend, kwargs, "password") is None:
        prompt = {"kind": "password", "email": user.email, "choose_account": False}
        return pause(
            backend, pipeline_index, "/link/amazon/password", prompt, {**kwargs, "user": user}
        )
    if not password_checker(backend)(user, answer_of(kwargs).get("password", "")):
        raise WrongPassword(backend=backend, attempts_left=1, stage="pipeline")
    return dict(DONE)


_AFTER = AMAZON_PIPELINE.index("social_amazon_link.pipelines.match_by_uid") + 1
CONFIRM_WHILE_SIGNED_IN = (
    *AMAZON_PIPELINE[:_AFTER],
    f"{__name__}.confirm_while_signed_in",
    *AMAZON_PIPELINE[_AFTER:],
)
#: The app's own prompt only: a header sign-in never records when it signed in,
#: so LINK_REAUTH_SECONDS would ask first (tests/test_reauth.py tests that one).
ALAN_CONFIRMS = {
    "SOCIAL_AUTH_AMAZON_PIPELINE": CONFIRM_WHILE_SIGNED_IN,
    "SOCIAL_AUTH_AMAZON_LINK_REAUTH_SECONDS": 0,
}
