"""The Amazon settings are checked once, when ``init_app`` runs, not by the first visitor."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine
from sqlalchemy.orm import scoped_session, sessionmaker

from social_amazon_link.flask import init_app
from social_amazon_link.flask.storage import FlaskStorage
from social_amazon_link.settings import AmazonSettingsError, check_settings, scope_list
from social_amazon_link.storage_contract import StorageContractError

CLIENT_ID = "amzn1.application-oa2-client.0123456789abcdef"
SECRET = "settings-test-secret-never-shown"
GOOD = {"SOCIAL_AUTH_AMAZON_KEY": CLIENT_ID, "SOCIAL_AUTH_AMAZON_SECRET": SECRET}
ABSENT = object()
URL_RULE = "https:// URL (plain http:// only on this machine's loopback"


def make_app(**settings: Any) -> Flask:
    """A bare app with the given settings, Login with Amazon added the documented way."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="k", SOCIAL_AUTH_USER_MODEL="tests.sample_app.User")
    app.config.update({name: value for name, value in settings.items() if value is not ABSENT})
    init_app(app, scoped_session(sessionmaker(bind=create_engine("sqlite://"))))
    return app


def problems_of(**settings: Any) -> dict[str, str]:
    with pytest.raises(AmazonSettingsError) as raised:
        make_app(**settings)
    # One error that names every problem, nothing registered before it.
    for name, problem in raised.value.problems.items():
        assert f"- {name}: {problem}" in str(raised.value)
    return raised.value.problems


def test_good_settings_start():
    app = make_app(**GOOD)
    assert "social" in app.blueprints


@pytest.mark.parametrize("missing", ["SOCIAL_AUTH_AMAZON_KEY", "SOCIAL_AUTH_AMAZON_SECRET"])
@pytest.mark.parametrize("value", [ABSENT, None, "", "   ", 12345])
def test_a_missing_key_or_secret_stops_the_start(missing, value):
    problems = problems_of(**{**GOOD, missing: value})
    assert list(problems) == [missing]
    assert problems[missing].startswith("missing or empty: set it to your LWA client")
    assert "12345" not in problems[missing]  # a secret's value is never quoted


def test_the_error_names_every_bad_setting_at_once_and_registers_nothing():
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="k",
        SOCIAL_AUTH_USER_MODEL="tests.sample_app.User",
        SOCIAL_AUTH_AMAZON_REGION="US",
        SOCIAL_AUTH_AMAZON_SCOPE=["profile", "email"],
        SOCIAL_AUTH_AMAZON_API_URL="http://lwa.example.com",
    )
    with pytest.raises(AmazonSettingsError) as raised:
        init_app(app, scoped_session(sessionmaker(bind=create_engine("sqlite://"))))
    assert list(raised.value.problems) == [
        "SOCIAL_AUTH_AMAZON_KEY",
        "SOCIAL_AUTH_AMAZON_SECRET",
        "SOCIAL_AUTH_AMAZON_REGION",
        "SOCIAL_AUTH_AMAZON_SCOPE",
        "SOCIAL_AUTH_AMAZON_API_URL",
    ]
    assert str(raised.value).startswith("Login with Amazon is not configured correctly:\n- ")
    assert app.blueprints == {}


@pytest.mark.parametrize("region", ["US", "na ", "", None, 1])
def test_a_region_that_is_not_na_eu_or_fe_is_named(region):
    # None set explicitly is not the default (a sign-in would refuse it too).
    assert problems_of(**GOOD, SOCIAL_AUTH_AMAZON_REGION=region) == {
        "SOCIAL_AUTH_AMAZON_REGION": f"{region!r} is not a region: use one of NA, EU, FE."
    }


@pytest.mark.parametrize("region", ["NA", "EU", "FE", "eu"])
def test_each_region_starts(region):
    make_app(**GOOD, SOCIAL_AUTH_AMAZON_REGION=region)


@pytest.mark.parametrize(
    ("scope", "quoted"),
    [
        (["profile", "email"], "'email' unknown"),
        ("profile,postal_code", "'profile,postal_code' unknown"),
        (("profile", "Profile"), "'Profile' unknown"),
        ({"profile"}, "{'profile'} is not a list of scopes"),
        (["profile", 3], "3 unknown"),
    ],
)
def test_an_unknown_scope_is_named_with_the_known_ones(scope, quoted):
    problems = problems_of(**GOOD, SOCIAL_AUTH_AMAZON_SCOPE=scope)
    assert problems == {
        "SOCIAL_AUTH_AMAZON_SCOPE": f"{quoted}: use a list of profile, profile:user_id, "
        'postal_code, or one string of them separated by spaces (as Amazon writes it: "profile '
        'postal_code").'
    }


@pytest.mark.parametrize(
    "scope", ["profile postal_code", "  profile:user_id ", ("postal_code",), ["profile"], [], ""]
)
def test_a_scope_list_or_a_space_separated_string_starts(scope):
    make_app(**GOOD, SOCIAL_AUTH_AMAZON_SCOPE=scope)


def test_scope_list_splits_a_string_as_amazon_writes_it():
    assert scope_list("profile  postal_code\t profile:user_id") == [
        "profile",
        "postal_code",
        "profile:user_id",
    ]
    assert scope_list(("profile",)) == ["profile"]
    assert scope_list(None) == []


@pytest.mark.parametrize("name", ["AUTHORIZATION_URL", "API_URL", "ACCESS_TOKEN_URL"])
@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://api.example.com", "http://api.example.com"),
        ("http://user:pw@10.0.0.5:5001/x", "http://10.0.0.5"),
        ("http://127.0.0.1.example.com", "http://127.0.0.1.example.com"),
        ("ftp://127.0.0.1/", "ftp://127.0.0.1"),
        ("api.amazon.com", "no scheme://"),
        ("https:///ap/oa", "https://"),
    ],
)
def test_a_url_that_is_not_https_or_loopback_is_refused(name, url, shown):
    problems = problems_of(**GOOD, **{f"SOCIAL_AUTH_AMAZON_{name}": url})
    assert problems == {
        f"SOCIAL_AUTH_AMAZON_{name}": f"{shown} is not allowed: use an {URL_RULE}: "
        "127.0.0.0/8, ::1 or localhost)."
    }
    assert "pw" not in problems[f"SOCIAL_AUTH_AMAZON_{name}"]


@pytest.mark.parametrize(
    "url",
    [
        "https://lwa-proxy.example.com",
        "http://127.0.0.1:5001",
        "http://127.8.9.10:5001/ap/oa",
        "http://[::1]:5001",
        "http://localhost:5001",
        "http://LOCALHOST:5001",
    ],
)
def test_https_or_loopback_http_starts(url):
    make_app(
        **GOOD,
        SOCIAL_AUTH_AMAZON_AUTHORIZATION_URL=url + "/ap/oa",
        SOCIAL_AUTH_AMAZON_API_URL=url,
        SOCIAL_AUTH_AMAZON_ACCESS_TOKEN_URL=url + "/auth/o2/token",
    )


def test_settings_are_read_with_social_cores_fallback():
    # SOCIAL_AUTH_<name> counts when SOCIAL_AUTH_AMAZON_<name> is not set...
    make_app(SOCIAL_AUTH_KEY=CLIENT_ID, SOCIAL_AUTH_SECRET=SECRET, SOCIAL_AUTH_REGION="EU")
    # ...and the Amazon one wins over it.
    problems = problems_of(**GOOD, SOCIAL_AUTH_REGION="EU", SOCIAL_AUTH_AMAZON_REGION="XX")
    assert list(problems) == ["SOCIAL_AUTH_AMAZON_REGION"]


def test_check_settings_takes_any_frameworks_settings():
    # What a Django integration would pass: its own lookup, the same rules.
    values = {"KEY": CLIENT_ID, "SECRET": SECRET, "SCOPE": "profile postal_code"}
    check_settings(lambda name, default: values.get(name, default))
    values["SCOPE"] = "profile email"
    with pytest.raises(AmazonSettingsError) as raised:
        check_settings(lambda name, default: values.get(name, default))
    assert list(raised.value.problems) == ["SOCIAL_AUTH_AMAZON_SCOPE"]


UNVERIFIED = "Amazon does not verify emails"


@pytest.mark.parametrize(
    ("allowlist", "named"),
    [
        ({"SOCIAL_AUTH_WHITELISTED_DOMAINS": ["example.com"]}, "WHITELISTED_DOMAINS"),
        ({"SOCIAL_AUTH_AMAZON_WHITELISTED_EMAILS": ["ada@example.com"]}, "WHITELISTED_EMAILS"),
    ],
)
def test_an_email_allowlist_with_the_amazon_pipeline_warns_once(caplog, allowlist, named):
    with caplog.at_level(logging.WARNING, logger="social_amazon_link"):
        make_app(**GOOD, **allowlist)
    warnings = [r for r in caplog.records if UNVERIFIED in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].getMessage().startswith(f"{named} set with the Amazon pipeline")
    assert warnings[0].levelno == logging.WARNING


@pytest.mark.parametrize(
    "settings",
    [
        {},  # no allowlist
        {"SOCIAL_AUTH_WHITELISTED_DOMAINS": []},
        {
            # a pipeline without social-core's auth_allowed step
            "SOCIAL_AUTH_WHITELISTED_DOMAINS": ["example.com"],
            "SOCIAL_AUTH_AMAZON_PIPELINE": ("social_amazon_link.pipelines.fetch_profile",),
        },
    ],
)
def test_no_warning_without_an_allowlist_in_the_pipeline(caplog, settings):
    with caplog.at_level(logging.WARNING, logger="social_amazon_link"):
        make_app(**GOOD, **settings)
    assert [r for r in caplog.records if UNVERIFIED in r.getMessage()] == []


def test_the_demo_starts_on_the_emulator_and_on_real_amazon(monkeypatch, tmp_path):
    from demo import create_app as create_demo

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    for name in ("AMAZON_CLIENT_ID", "AMAZON_CLIENT_SECRET", "AMAZON_REGION", "LWA_EMULATOR_URL"):
        monkeypatch.delenv(name, raising=False)
    assert create_demo().config["DEMO_MODE"] is True
    monkeypatch.setenv("AMAZON_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("AMAZON_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("AMAZON_REGION", "FE")
    assert create_demo().config["DEMO_MODE"] is False
    # A region typed wrong in the shell stops the demo at start, named.
    monkeypatch.setenv("AMAZON_REGION", "US")
    with pytest.raises(AmazonSettingsError) as raised:
        create_demo()
    assert list(raised.value.problems) == ["SOCIAL_AUTH_AMAZON_REGION"]


class StorageWithoutLocks(FlaskStorage):
    """An app's storage that lost two members the steps need."""

    end_transaction = None
    link_events = None


def test_a_storage_missing_contract_members_stops_the_start_naming_each():
    # Named at start, where each would otherwise be a 500 at the first sign-in.
    with pytest.raises(StorageContractError) as raised:
        make_app(**GOOD, SOCIAL_AUTH_STORAGE=f"{__name__}.StorageWithoutLocks")
    assert "end_transaction" in raised.value.missing
    assert any(name.startswith("link_events") for name in raised.value.missing)
    assert "end_transaction" in str(raised.value)
    # The integration's own storage meets the contract.
    make_app(**GOOD)
