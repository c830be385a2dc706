"""The storage contract's conformance tests, for any storage.

Written against :mod:`social_amazon_link.storage_contract` and the storage's
public methods only. A storage runs them by subclassing
:class:`StorageConformance` in a test module that provides the
``contract_storage`` fixture (a :class:`ContractStorage`): see
``tests/test_storage_contract.py``, which runs them on the SQLAlchemy storage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from social_core.exceptions import AuthAssociationError, AuthPolicyError
from social_core.strategy import BaseStrategy

from social_amazon_link.errors import DatabaseUnavailable, UnknownLink
from social_amazon_link.storage_contract import check_storage

#: How long the first holder of a lock keeps it, in the lock tests.
HOLD_SECONDS = 0.4


@dataclass
class ContractStorage:
    """What the ``contract_storage`` fixture gives: a storage bound to a fresh, empty database."""

    #: The storage class (``SOCIAL_AUTH_STORAGE``), bound to the database.
    storage: Any
    #: ``add_user(username, email, *, password=None, active=True) -> pk``: an
    #: account as the app's own registration makes it, committed.
    add_user: Callable[..., Any]
    #: Ends the calling thread's database session (each worker thread calls it last).
    done: Callable[[], None]
    #: An exception the database raised while out of reach (a refused connection, say).
    outage: Callable[[], BaseException]
    #: An exception the database raised for a wrong statement (a bug, not an outage).
    wrong_sql: Callable[[], BaseException]
    #: The user model's length limits: ``username``, ``email`` and ``name``.
    limits: dict[str, int]


def in_threads(env: ContractStorage, count: int, work: Callable[[int], Any]) -> list[Any]:
    """``work(0)`` to ``work(count - 1)``, each in its own thread (and database
    session), started together; their results, or the first error raised."""
    start = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            start.wait()
            results[index] = work(index)
        except BaseException as error:
            errors.append(error)
        finally:
            env.done()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if errors:
        raise errors[0]
    return results


def usernames(users: Any) -> list[str]:
    return sorted(str(user.username) for user in users)


class StorageConformance:
    """The contract's tests: subclass it where a ``contract_storage`` fixture is defined."""

    def test_the_storage_has_every_member_of_the_contract(self, contract_storage):
        check_storage(contract_storage.storage)

    # -- storage.user ---------------------------------------------------------

    def test_email_match_is_simple_case_folding_and_includes_inactive_accounts(
        self, contract_storage
    ):
        env = contract_storage
        env.add_user("uli", "Ülrich@Example.com")
        env.add_user("sisyphus", "Σίσυφος@example.com")
        env.add_user("kate", "kate@example.com")
        env.add_user("kelvin", "\u212ael@example.com")  # K: KELVIN SIGN
        env.add_user("strasse", "straße@example.com")
        env.add_user("sleeper", "Sleeper@Example.com", active=False)
        env.add_user("twin1", "twin@example.com")
        env.add_user("twin2", "TWIN@example.com")
        find = env.storage.user.get_users_by_email

        assert usernames(find("ülrich@example.com")) == ["uli"]
        assert usernames(find("ÜLRICH@EXAMPLE.COM")) == ["uli"]
        # The three sigmas: capital, small, final.
        assert usernames(find("σίσυφος@example.com")) == ["sisyphus"]
        assert usernames(find("ςίσυφοσ@EXAMPLE.com")) == ["sisyphus"]
        # The Kelvin sign folds to k, both ways round.
        assert usernames(find("\u212aATE@example.com")) == ["kate"]
        assert usernames(find("KEL@example.com")) == ["kelvin"]
        # Simple folding: ß is not ss, but the capital sharp s (U+1E9E) is ß.
        assert usernames(find("strasse@example.com")) == []
        assert usernames(find("STRASSE@example.com")) == []
        assert usernames(find("STRA\u1e9eE@example.com")) == ["strasse"]
        assert usernames(find("sleeper@example.com")) == ["sleeper"]
        assert usernames(find("twin@EXAMPLE.com")) == ["twin1", "twin2"]
        assert usernames(find("  kate@example.com ")) == ["kate"]

    def test_email_match_finds_nothing_for_wildcards_parts_or_unstorable_values(
        self, contract_storage
    ):
        env = contract_storage
        env.add_user("kate", "kate@example.com")
        find = env.storage.user.get_users_by_email
        for other in (
            "_ate@example.com",
            "%@example.com",
            "kate@example.co",
            "kate@example.com.",
            "ate@example.com",
            "kate\x00@example.com",
            "",
        ):
            assert usernames(find(other)) == [], other

    def test_username_check_ignores_case_non_ascii_included(self, contract_storage):
        env = contract_storage
        env.add_user("Alan", "alan@example.com")
        env.add_user("Ülrich", "ulrich@example.com")
        env.add_user("al_n", "other@example.com")
        exists = env.storage.user.user_exists
        for taken in ("Alan", "alan", "ALAN", "Ülrich", "ülrich", "ÜLRICH", "al_n", "AL_N"):
            assert exists(username=taken), taken
        for free in ("alan2", "Ulrich", "al%", "a_an", "al\x00an"):
            assert not exists(username=free), free
        assert exists(username="alan", email="alan@example.com")
        assert not exists(username="alan", email="other@example.com")

    def test_a_new_user_is_committed_with_its_link_and_not_before(self, contract_storage):
        env = contract_storage
        storage = env.storage.user
        seen: list[list[str]] = []

        def look(_: int) -> None:
            seen.append(usernames(storage.get_users_by_email("ann@example.com")))

        user = storage.create_user(username="ann", email="ann@example.com")
        in_threads(env, 1, look)  # another connection: nothing yet
        link = storage.create_social_auth(user, "amzn1.account.ANN", "amazon", "user_id")
        in_threads(env, 1, look)
        assert seen == [[], ["ann"]]
        assert (
            storage.get_social_auth("amazon", "amzn1.account.ANN", id_key="user_id").id == link.id
        )
        assert storage.get_social_auth("amazon", "amzn1.account.ANN", id_key="other") is None
        assert [s.uid for s in storage.get_social_auth_for_user(user)] == ["amzn1.account.ANN"]
        assert storage.get_username(storage.get_user(user.id)) == "ann"
        assert storage.get_user(None) is None

    def test_a_taken_username_is_username_in_use_and_the_storage_stays_usable(
        self, contract_storage
    ):
        env = contract_storage
        env.add_user("ann", "ann@example.com")
        with pytest.raises(AuthAssociationError) as refused:
            env.storage.user.create_user(username="ann", email="other@example.com")
        assert refused.value.code == "username_in_use"
        assert usernames(env.storage.user.get_users_by_email("other@example.com")) == []
        assert env.storage.user.user_exists(username="ann")

    def test_changed_saves_the_user(self, contract_storage):
        env = contract_storage
        pk = env.add_user("ann", "ann@example.com")
        user = env.storage.user.get_user(pk)
        user.email = "ann@example.org"
        env.storage.user.changed(user)
        found = in_threads(
            env, 1, lambda _: usernames(env.storage.user.get_users_by_email("ann@example.org"))
        )
        assert found == [["ann"]]

    def test_field_limits_are_the_user_models_columns(self, contract_storage):
        env = contract_storage
        user = env.storage.user
        for field, limit in env.limits.items():
            assert user.field_max_length(field) == limit, field
        assert user.username_max_length() == env.limits["username"]
        assert user.field_max_length("id") is None
        assert user.field_max_length("no_such_field") is None
        assert user.clean_username("ann smith") == "annsmith"

    # -- the identity lock ----------------------------------------------------

    def _second_lock_waits_for_the_first(
        self, env: ContractStorage, second: tuple[str, str, str | None]
    ) -> tuple[float, float, Any, list[str]]:
        """Thread 0 locks Ann's identity and email, makes her account and link
        after HOLD_SECONDS; thread 1 then locks ``second`` and looks again.
        Returns when 0 began to commit, when 1 got its lock, the link and users 1 saw."""
        storage = env.storage.user
        locked = threading.Event()
        seen: dict[str, Any] = {}

        def first() -> None:
            storage.lock_identity("amazon", "amzn1.account.ANN", "ann@example.com")
            locked.set()
            time.sleep(HOLD_SECONDS)
            user = storage.create_user(username="ann", email="ann@example.com")
            seen["committing"] = time.monotonic()  # the link commits both
            storage.create_social_auth(user, "amzn1.account.ANN", "amazon")

        def then(_: int) -> None:
            assert locked.wait(10)
            storage.lock_identity(*second)
            seen["locked"] = time.monotonic()
            seen["link"] = storage.get_social_auth("amazon", "amzn1.account.ANN")
            seen["users"] = usernames(storage.get_users_by_email("ann@example.com"))
            env.storage.end_transaction()

        in_threads(env, 2, lambda i: first() if i == 0 else then(i))
        return seen["committing"], seen["locked"], seen["link"], seen["users"]

    def test_the_identity_lock_waits_until_the_first_account_and_link_are_committed(
        self, contract_storage
    ):
        committed, locked, link, users = self._second_lock_waits_for_the_first(
            contract_storage, ("amazon", "amzn1.account.ANN", "ann@example.com")
        )
        assert locked >= committed
        assert link is not None and link.uid == "amzn1.account.ANN"
        assert users == ["ann"]

    def test_the_email_lock_waits_for_another_identity_with_that_email_in_any_case(
        self, contract_storage
    ):
        committed, locked, _, users = self._second_lock_waits_for_the_first(
            contract_storage, ("amazon", "amzn1.account.OTHER", "ANN@Example.COM")
        )
        assert locked >= committed
        assert users == ["ann"]

    def test_end_transaction_lets_go_of_the_lock_and_keeps_loaded_objects(self, contract_storage):
        env = contract_storage
        pk = env.add_user("ann", "ann@example.com")
        user = env.storage.user.get_user(pk)
        env.storage.user.lock_identity("amazon", "amzn1.account.ANN", "ann@example.com")
        env.storage.end_transaction()

        def lock(_: int) -> float:
            started = time.monotonic()
            env.storage.user.lock_identity("amazon", "amzn1.account.ANN", "ann@example.com")
            env.storage.end_transaction()
            return time.monotonic() - started

        [waited] = in_threads(env, 1, lock)
        assert waited < HOLD_SECONDS
        assert user.username == "ann"

    # -- unlinking ------------------------------------------------------------

    def test_unlinking_keeps_a_way_to_sign_in(self, contract_storage):
        env = contract_storage
        storage = env.storage.user
        with_password = storage.get_user(env.add_user("ann", "ann@example.com", password="pw"))
        without = storage.get_user(env.add_user("bob", "bob@example.com"))
        ann_link = storage.create_social_auth(with_password, "amzn1.account.ANN", "amazon")
        bob_link = storage.create_social_auth(without, "amzn1.account.BOB", "amazon")

        assert storage.allowed_to_disconnect(with_password, "amazon")
        assert not storage.allowed_to_disconnect(without, "amazon")
        with pytest.raises(AuthPolicyError) as refused:
            storage.disconnect_entries(without, "amazon", bob_link.id)
        assert refused.value.code == "disconnect_disallowed"
        for wrong in (bob_link.id, str(ann_link.id) + ".0", "0", -1):
            with pytest.raises(UnknownLink):
                storage.disconnect_entries(with_password, "amazon", wrong)
        with pytest.raises(UnknownLink):
            storage.get_social_auth_for_user(with_password, "amazon", "+1")

        [entry] = storage.disconnect_entries(with_password, "amazon", str(ann_link.id))
        storage.disconnect(entry)
        assert storage.get_social_auth("amazon", "amzn1.account.ANN") is None
        assert storage.get_social_auth("amazon", "amzn1.account.BOB") is not None

    def test_a_second_link_of_one_identity_is_an_integrity_error(self, contract_storage):
        env = contract_storage
        storage = env.storage
        ann = storage.user.get_user(env.add_user("ann", "ann@example.com"))
        bob = storage.user.get_user(env.add_user("bob", "bob@example.com"))
        storage.user.create_social_auth(ann, "amzn1.account.ANN", "amazon")
        with pytest.raises(Exception) as duplicate:
            storage.user.create_social_auth(bob, "amzn1.account.ANN", "amazon")
        assert storage.is_integrity_error(duplicate.value)
        assert not storage.is_integrity_error(ValueError("duplicate"))
        assert storage.user.get_social_auth("amazon", "amzn1.account.ANN").user.id == ann.id

    def test_a_legacy_link_is_rekeyed_only_while_its_evidence_holds(self, contract_storage):
        env = contract_storage
        storage = env.storage
        ann = storage.user.get_user(env.add_user("ann", "ann@example.com"))
        legacy = storage.user.create_social_auth(ann, "ann@example.com", "amazon")
        legacy.set_extra_data({"user_id": "amzn1.account.ANN"})
        migrated = storage.user.migrate_social_auth(
            legacy, "amzn1.account.ANN", "user_id", evidence_key="user_id"
        )
        assert (migrated.uid, migrated.id_key) == ("amzn1.account.ANN", "user_id")
        with pytest.raises(Exception) as changed:
            storage.user.migrate_social_auth(
                migrated, "amzn1.account.EVE", "user_id", evidence_key="user_id"
            )
        assert storage.is_integrity_error(changed.value)
        assert storage.user.get_social_auth("amazon", "amzn1.account.ANN", "user_id") is not None

    # -- link_attempts --------------------------------------------------------

    def test_concurrent_wrong_tries_are_each_counted_exactly_once(self, contract_storage):
        env = contract_storage
        pk = env.add_user("ann", "ann@example.com")
        attempts = env.storage.link_attempts
        limits = {"max_attempts": 100, "lockout_seconds": 900}

        def wrong(_: int) -> int:
            assert attempts.reserve(pk, **limits).allowed
            return int(attempts.fail(pk, **limits))

        counts = in_threads(env, 8, wrong)
        assert sorted(counts) == list(range(1, 9))
        assert attempts.reserve(pk, **limits).failures == 8

    def test_however_many_race_only_max_attempts_tries_are_checked_and_one_locks(
        self, contract_storage
    ):
        env = contract_storage
        pk = env.add_user("ann", "ann@example.com")
        attempts = env.storage.link_attempts
        limits = {"max_attempts": 3, "lockout_seconds": 900}

        answers = in_threads(env, 10, lambda _: attempts.reserve(pk, **limits))
        assert sum(a.allowed for a in answers) == 3
        assert all(a.busy and a.retry_after >= 1 for a in answers if not a.allowed)
        counts = in_threads(env, 3, lambda _: attempts.fail(pk, **limits))
        assert sorted(counts) == [1, 2, 3]
        locked = attempts.reserve(pk, **limits)
        assert (locked.allowed, locked.busy, locked.failures) == (False, False, 3)
        assert 0 < locked.retry_after <= 901
        assert abs(locked.locked_since - time.time()) < 5

    def test_a_lock_lasts_the_lockout_and_clear_forgets_the_failures(self, contract_storage):
        env = contract_storage
        pk = env.add_user("ann", "ann@example.com")
        attempts = env.storage.link_attempts
        limits = {"max_attempts": 2, "lockout_seconds": 60}
        for _ in range(2):
            assert attempts.reserve(pk, now=1000, **limits).allowed
            attempts.fail(pk, now=1000, **limits)
        locked = attempts.reserve(pk, now=1030, **limits)
        assert (locked.allowed, locked.busy, locked.locked_since) == (False, False, 1000)
        assert locked.retry_after >= 30
        # The other door keeps its own count.
        assert attempts.reserve(pk, now=1030, scope="sign_in", **limits).allowed
        attempts.release(pk, scope="sign_in")
        # The lock ends: the count starts again.
        again = attempts.reserve(pk, now=1062, **limits)
        assert (again.allowed, again.failures) == (True, 0)
        assert attempts.fail(pk, now=1062, **limits) == 1
        assert attempts.reserve(pk, now=1063, **limits).allowed
        attempts.clear(pk)
        assert attempts.reserve(pk, now=1064, **limits).failures == 0

    def test_a_released_try_gives_its_place_back(self, contract_storage):
        env = contract_storage
        pk = env.add_user("ann", "ann@example.com")
        attempts = env.storage.link_attempts
        limits = {"max_attempts": 1, "lockout_seconds": 60}
        assert attempts.reserve(pk, **limits).allowed
        assert attempts.reserve(pk, **limits).busy
        attempts.release(pk)
        assert attempts.reserve(pk, **limits).allowed

    # -- link_events ----------------------------------------------------------

    def test_events_are_written_and_listed_newest_first(self, contract_storage):
        env = contract_storage
        ann, bob = env.add_user("ann", "ann@example.com"), env.add_user("bob", "bob@example.com")
        events = env.storage.link_events
        events.record("linked", user_id=ann, amazon_user_id="amzn1.account.ANN", detail="password")
        events.record("wrong_password", user_id=ann, amazon_user_id=None, detail="x" * 300)
        events.record("unlinked", user_id=ann, amazon_user_id="amzn1.account.ANN")
        events.record("linked", user_id=bob, amazon_user_id="amzn1.account.BOB")

        listed = events.for_user(ann, limit=2)
        assert [(e.event, e.amazon_user_id, e.detail) for e in listed] == [
            ("unlinked", "amzn1.account.ANN", ""),
            ("wrong_password", None, "x" * 200),
        ]
        assert [e.event for e in events.for_user(ann)] == ["unlinked", "wrong_password", "linked"]
        assert all(e.user_id == ann and e.created is not None for e in events.for_user(ann))

    def test_repeated_events_are_counted_on_one_row_even_when_simultaneous(self, contract_storage):
        env = contract_storage
        ann = env.add_user("ann", "ann@example.com")
        events = env.storage.link_events
        since = datetime.now(UTC) - timedelta(seconds=5)

        def refused(_: int) -> bool:
            return events.record_repeat("locked_out", user_id=ann, amazon_user_id=None, since=since)

        written = in_threads(env, 6, refused)
        [row] = events.for_user(ann)
        assert (row.event, row.repeats) == ("locked_out", 5)
        # Exactly one call wrote the row (the one whose event is announced).
        assert sorted(written) == [False] * 5 + [True]
        # A new lock (a later since) starts a row of its own.
        later = datetime.now(UTC) + timedelta(seconds=5)
        assert events.record_repeat("locked_out", user_id=ann, amazon_user_id=None, since=later)
        assert [e.repeats for e in events.for_user(ann)] == [0, 5]

    # -- code -----------------------------------------------------------------

    def test_an_emailed_code_is_kept_as_a_digest_found_as_typed_and_used_once(
        self, contract_storage
    ):
        env = contract_storage
        codes = env.storage.code
        before = datetime.now(UTC) - timedelta(seconds=5)
        sent = codes.make_code("Ann@Example.com")
        typed = "-".join([sent.code[:4].lower(), sent.code[4:]]) + " "

        assert codes.normal_code(typed) == sent.code
        assert codes.digest(typed) == codes.digest(sent.code)
        assert codes.digest(sent.code) != codes.digest(codes.make_code("ann@example.com").code)
        found = codes.get_code(typed)
        assert found is not None
        assert (found.email, found.verified) == ("Ann@Example.com", False)
        assert codes.get_code("") is None
        assert codes.get_code("ABCD\x00") is None

        # Two codes to the address, in any case; none since a moment from now.
        times = codes.sent_since("ANN@EXAMPLE.COM", before)
        assert len(times) == 2 and times == sorted(times)
        assert all(t.utcoffset() == timedelta(0) and t >= before for t in times)
        assert codes.sent_since("ann@example.com", datetime.now(UTC) + timedelta(seconds=5)) == []
        assert codes.sent_since("other@example.com", before) == []

        # social-core's own check, twice: the code is used once.
        strategy = SimpleNamespace(storage=env.storage, setting=lambda name, default: default)
        assert BaseStrategy.validate_email(strategy, "Ann@Example.com", sent.code)
        assert not BaseStrategy.validate_email(strategy, "Ann@Example.com", sent.code)
        assert codes.get_code(sent.code).verified

    # -- nonce ----------------------------------------------------------------

    def test_a_nonce_is_used_once_and_consumed_by_one_caller(self, contract_storage):
        env = contract_storage
        nonce = env.storage.nonce
        now = int(time.time())
        assert nonce.use("amazon:state", now, "s1")
        assert not nonce.use("amazon:state", now, "s1")
        claims = in_threads(env, 6, lambda _: nonce.consume("amazon:state", now, "s1"))
        assert sorted(claims) == [False] * 5 + [True]
        assert not nonce.consume("amazon:state", now, "s1")
        assert not nonce.consume("amazon:state", now, "never-used")
        assert not nonce.consume("amazon:state", now, "s\x00")

    # -- partial --------------------------------------------------------------

    def test_a_partial_is_stored_loaded_detached_and_destroyed(self, contract_storage):
        env = contract_storage
        partials = env.storage.partial
        partial = partials.prepare(
            "amazon", 3, {"args": [], "kwargs": {"uid": "amzn1.account.ANN"}}
        )
        partials.store(partial)

        loaded = partials.load(partial.token)
        assert (loaded.backend, loaded.next_step, loaded.kwargs) == (
            "amazon",
            3,
            {"uid": "amzn1.account.ANN"},
        )
        # What a resuming request writes into it never reaches the database.
        loaded.extend_kwargs({"password": "hunter2"})
        env.storage.nonce.use("amazon:state", int(time.time()), "another-write")
        assert "password" not in partials.load(partial.token).kwargs

        partials.destroy(partial.token)
        assert partials.load(partial.token) is None
        partials.destroy(partial.token)
        partials.destroy("")
        assert partials.load("") is None
        assert partials.load("\x00") is None

    # -- the whole storage ----------------------------------------------------

    def test_only_errors_of_reach_are_database_unavailable(self, contract_storage):
        env = contract_storage
        unavailable = env.storage.database_unavailable(env.outage())
        assert isinstance(unavailable, DatabaseUnavailable)
        assert unavailable.code == "database_unavailable"
        assert env.storage.database_unavailable(env.wrong_sql()) is None
        assert env.storage.database_unavailable(ValueError("database is locked")) is None

    def test_purge_deletes_only_what_is_too_old(self, contract_storage):
        env = contract_storage
        storage = env.storage
        ann = env.add_user("ann", "ann@example.com")
        now = time.time()
        storage.nonce.use("amazon:state", int(now), "state")
        token = storage.partial.store(storage.partial.prepare("amazon", 1, {"kwargs": {}})).token
        code = storage.code.make_code("ann@example.com").code
        storage.link_events.record("linked", user_id=ann, amazon_user_id=None)

        assert set(storage.purge(now=now).values()) == {0}
        counts = storage.purge(now=now + 3600, events_max_age=0)
        assert counts == {"nonces": 1, "partials": 1, "codes": 1, "attempts": 0, "events": 0}
        assert not storage.nonce.consume("amazon:state", int(now), "state")
        assert storage.partial.load(token) is None
        assert storage.code.get_code(code) is None
        assert len(storage.link_events.for_user(ann)) == 1
