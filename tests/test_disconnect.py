"""Unlinking Amazon: CSRF-checked, refused when it would lock the user out, recorded."""

from __future__ import annotations

import pytest

GRACE = "amzn1.account.AEGRACEHOPPER00001"


def _signed_in(app, browser, password="pw-123456"):
    user_id = app.add_user("grace", "grace@example.com", password)
    app.link(user_id, GRACE)
    if password:
        browser.post(f"{app.url}/test-login", data={"username": "grace", "password": password})
    return user_id


def _links(app) -> int:
    return len(app.query("SELECT id FROM social_auth_usersocialauth"))


def test_unlink_without_the_csrf_token_is_refused(serve_app, browser):
    app = serve_app()
    _signed_in(app, browser)
    answer = browser.post(f"{app.url}/disconnect/amazon/", data={})
    assert answer.status_code == 400
    assert 'data-error-code="invalid_request"' in answer.text
    assert "The form expired. Please reload the page and try again." in answer.text
    assert _links(app) == 1


def test_unlink_with_the_token_removes_the_link_and_records_it(serve_app, browser):
    app = serve_app()
    user_id = _signed_in(app, browser)
    token = browser.get(f"{app.url}/csrf-token").json()["csrf_token"]
    answer = browser.post(
        f"{app.url}/disconnect/amazon/", data={"csrf_token": token}, allow_redirects=False
    )
    assert answer.status_code == 302
    assert _links(app) == 0
    assert app.events() == [("unlinked", user_id, GRACE, "")]


def test_unlink_that_would_leave_no_way_to_sign_in_is_refused(serve_app, browser, lwa_emulator):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app()
    from tests.flows import sign_in

    user_id = sign_in(browser, app, GRACE).json()["id"]  # an account made by Amazon
    token = browser.get(f"{app.url}/csrf-token").json()["csrf_token"]
    answer = browser.post(f"{app.url}/disconnect/amazon/", data={"csrf_token": token})
    assert answer.status_code == 409
    assert 'data-error-code="disconnect_disallowed"' in answer.text
    assert "Amazon is still linked" in answer.text
    assert _links(app) == 1
    assert [e[0] for e in app.events()] == ["linked"]
    assert browser.get(f"{app.url}/me").json()["id"] == user_id


@pytest.mark.flask_only  # Flask-WTF
def test_with_flask_wtf_checking_chosen_views_only_unlink_still_needs_the_token(serve_app, browser):
    # An app may turn Flask-WTF's check of every view off and protect only
    # some; the integration's forms are checked all the same.
    from flask_wtf.csrf import CSRFProtect

    app = serve_app(WTF_CSRF_CHECK_DEFAULT=False)
    CSRFProtect(app.app)
    _signed_in(app, browser)
    refused = browser.post(f"{app.url}/disconnect/amazon/", data={})
    assert refused.status_code == 400
    assert 'data-error-code="invalid_request"' in refused.text
    assert _links(app) == 1

    token = browser.get(f"{app.url}/csrf-token").json()["csrf_token"]
    done = browser.post(
        f"{app.url}/disconnect/amazon/", data={"csrf_token": token}, allow_redirects=False
    )
    assert done.status_code == 302
    assert _links(app) == 0


def _unlink(app, browser, association_id: str):
    token = browser.get(f"{app.url}/csrf-token").json()["csrf_token"]
    return browser.post(
        f"{app.url}/disconnect/amazon/{association_id}/",
        data={"csrf_token": token},
        allow_redirects=False,
    )


def test_unlink_by_another_spelling_of_the_id_is_unknown_link_and_removes_nothing(
    serve_app, browser, lwa_emulator
):
    # An account made by Amazon: the link is its only way to sign in. Before,
    # "54.0" passed the check (compared as text) and was deleted (matched as
    # a number on SQLite); "0" removed every Amazon link; others answered 500.
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app()
    from tests.flows import sign_in

    user_id = sign_in(browser, app, GRACE).json()["id"]
    [(link_id,)] = app.query("SELECT id FROM social_auth_usersocialauth")
    arabic_indic = str(link_id).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    spellings = [
        f"{link_id}.0",
        f"0{link_id}",
        f"+{link_id}",
        f"{link_id}e0",
        arabic_indic,
        "0",
        "-1",
        "abc",
        "1.5",
        "2147483648",
        "99999999999999999999",
    ]
    for spelling in spellings:
        answer = _unlink(app, browser, spelling)
        assert answer.status_code == 404, spelling
        assert 'data-error-code="unknown_link"' in answer.text, spelling
        assert "There is no such link on your account." in answer.text
        assert _links(app) == 1, spelling

    refused = _unlink(app, browser, str(link_id))
    assert refused.status_code == 409
    assert 'data-error-code="disconnect_disallowed"' in refused.text
    assert app.links() == [(user_id, GRACE)]
    assert [e[0] for e in app.events()] == ["linked"]


def test_unlink_by_id_removes_that_link_only_and_never_another_users(serve_app, browser):
    app = serve_app()
    user_id = _signed_in(app, browser)
    other = app.add_user("ada", "ada@example.com", "pw-654321")
    app.link(other, "amzn1.account.AEADALOVELACE00001")
    rows = {
        uid: link_id for link_id, uid in app.query("SELECT id, uid FROM social_auth_usersocialauth")
    }

    answer = _unlink(app, browser, str(rows["amzn1.account.AEADALOVELACE00001"]))
    assert answer.status_code == 404
    assert 'data-error-code="unknown_link"' in answer.text
    assert _links(app) == 2

    done = _unlink(app, browser, str(rows[GRACE]))
    assert done.status_code == 302
    assert app.links() == [(other, "amzn1.account.AEADALOVELACE00001")]
    assert app.events() == [("unlinked", user_id, GRACE, "")]


def test_unlink_of_one_of_two_links_by_id_keeps_the_other(serve_app, browser, lwa_emulator):
    # A passwordless account with two Amazon links: removing one by its id is
    # allowed (the other remains); the last one is then refused.
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app()
    from tests.flows import sign_in

    user_id = sign_in(browser, app, GRACE).json()["id"]
    second = "amzn1.account.AESECONDACCOUNT001"
    app.link(user_id, second)
    ids = {
        uid: link_id for link_id, uid in app.query("SELECT id, uid FROM social_auth_usersocialauth")
    }

    assert _unlink(app, browser, str(ids[GRACE])).status_code == 302
    assert app.links() == [(user_id, second)]
    last = _unlink(app, browser, str(ids[second]))
    assert last.status_code == 409
    assert 'data-error-code="disconnect_disallowed"' in last.text
    assert app.links() == [(user_id, second)]


def test_simultaneous_unlinks_leave_the_last_link(serve_app, browser, lwa_emulator):
    # A passwordless account with eight links, each unlinked at once from its
    # own tab: each check alone sees another link remain; seven may go.
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from tests.flows import sign_in

    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app()
    user_id = sign_in(browser, app, GRACE).json()["id"]
    for n in range(7):
        app.link(user_id, f"amzn1.account.AEMORELINKS{n:06d}")
    ids = [str(link_id) for (link_id,) in app.query("SELECT id FROM social_auth_usersocialauth")]
    token = browser.get(f"{app.url}/csrf-token").json()["csrf_token"]
    start = threading.Barrier(len(ids))

    def unlink(link_id: str) -> int:
        with requests.Session() as tab:
            tab.cookies.update(browser.cookies)
            start.wait()
            return tab.post(
                f"{app.url}/disconnect/amazon/{link_id}/",
                data={"csrf_token": token},
                allow_redirects=False,
            ).status_code

    with ThreadPoolExecutor(len(ids)) as pool:
        statuses = sorted(pool.map(unlink, ids))
    assert statuses == [302] * 7 + [409]
    assert _links(app) == 1
