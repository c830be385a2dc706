"""Abandoned sign-ins leave rows behind; purging removes only the unusable ones."""

from __future__ import annotations

import time

from social_amazon_link.flask.storage import FlaskStorage
from tests.flows import sign_in, start_sign_in

GRACE = "amzn1.account.AEGRACEHOPPER00001"


def _counts(app) -> tuple[int, int]:
    return (
        len(app.query("SELECT id FROM social_auth_nonce")),
        len(app.query("SELECT id FROM social_auth_partial")),
    )


def test_purge_removes_abandoned_states_and_pauses_once_too_old(serve_app, browser, lwa_emulator):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app()
    app.add_user("grace", "grace@example.com", "pw-123456")
    start_sign_in(browser, app)  # started, never finished: a state nonce stays
    assert "/link/amazon/password" in sign_in(browser, app, GRACE).url  # a pause stays
    assert _counts(app) == (1, 1)

    # Still usable: the command leaves them.
    result = app.app.test_cli_runner().invoke(args=["amazon-link", "purge"])
    assert result.exit_code == 0, result.output
    assert "purged 0 OAuth2 states, 0 paused sign-ins, 0 emailed codes" in result.output
    assert _counts(app) == (1, 1)

    # An hour on, both are past their lifetimes.
    with app.app.app_context():
        purged = FlaskStorage.purge(now=time.time() + 3600)
    assert purged == {"nonces": 1, "partials": 1, "codes": 0}
    assert _counts(app) == (0, 0)


def test_purge_removes_the_code_an_abandoned_pause_sent(serve_app, browser, lwa_emulator):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app(SOCIAL_AUTH_EMAIL_VALIDATION_FUNCTION="tests.sample_app.send_code")
    app.add_user("grace", "grace@example.com")  # no password: a code is emailed
    assert 'name="code"' in sign_in(browser, app, GRACE).text
    assert len(app.query("SELECT id FROM social_auth_code")) == 1
    with app.app.app_context():
        assert FlaskStorage.purge()["codes"] == 0  # its pause still waits
        assert FlaskStorage.purge(now=time.time() + 3600)["codes"] == 1
    assert app.query("SELECT id FROM social_auth_code") == []
