"""The linking rules of Login with Amazon as social-core pipeline steps.

Use :data:`AMAZON_PIPELINE` as ``SOCIAL_AUTH_PIPELINE`` (or
``SOCIAL_AUTH_AMAZON_PIPELINE`` to apply it to Amazon only), and
:data:`AMAZON_DISCONNECT_PIPELINE` as ``SOCIAL_AUTH_DISCONNECT_PIPELINE``.
The steps never import a web framework; what they keep (password attempts,
security events) lives in the storage.
"""

from __future__ import annotations

from .disconnect import disconnect_entries
from .email_sync import update_email
from .events import record_link, record_unlink
from .matching import match_by_email_require_password, match_by_uid
from .profile import fetch_profile
from .reauth import require_recent_sign_in
from .registration import prefill_registration

__all__ = [
    "AMAZON_DISCONNECT_PIPELINE",
    "AMAZON_PIPELINE",
    "disconnect_entries",
    "fetch_profile",
    "match_by_email_require_password",
    "match_by_uid",
    "prefill_registration",
    "record_link",
    "record_unlink",
    "require_recent_sign_in",
    "update_email",
]

AMAZON_PIPELINE = (
    # Rule 2: the profile Amazon returned to this server (never to the
    # client), validated; tokens removed from what a pause would store.
    "social_amazon_link.pipelines.fetch_profile",
    # social-core: the profile as details (username, email, names).
    "social_core.pipeline.social_auth.social_details",
    # social-core: the uid is Amazon's permanent user_id.
    "social_core.pipeline.social_auth.social_uid",
    # social-core: WHITELISTED_EMAILS / WHITELISTED_DOMAINS, when set.
    "social_core.pipeline.social_auth.auth_allowed",
    # Rule 3: this Amazon account is linked already: that user signs in
    # (identity_in_use when a signed-in user connects someone else's).
    "social_amazon_link.pipelines.match_by_uid",
    # A signed-in user connecting another Amazon account: signed in within
    # LINK_REAUTH_SECONDS, or their own password (or an emailed code) first.
    "social_amazon_link.pipelines.require_recent_sign_in",
    # Rule 4: local accounts with this email: the local password (or an
    # emailed code) first, and only then a link. Never the email alone.
    "social_amazon_link.pipelines.match_by_email_require_password",
    # Rule 5: no account: the new account's fields from the profile, with a
    # prefilled form when one is missing, invalid or taken.
    "social_amazon_link.pipelines.prefill_registration",
    # social-core: create the account from those fields.
    "social_core.pipeline.user.create_user",
    # social-core: write the link (provider "amazon", uid = user_id).
    "social_core.pipeline.social_auth.associate_user",
    # Record the new link and how it was earned.
    "social_amazon_link.pipelines.record_link",
    # Rule 6: keep the local email current, unless another account holds it
    # (before load_extra_data, which stores the email it compares against).
    "social_amazon_link.pipelines.update_email",
    # social-core: refresh the link's extra_data (user_id, name, email, postal_code).
    "social_core.pipeline.social_auth.load_extra_data",
)

AMAZON_DISCONNECT_PIPELINE = (
    # The links to remove, loaded once: unknown_link for an id that is not
    # one of the user's, disconnect_disallowed when the user would be left
    # with no way to sign in (in place of social-core's allowed_to_disconnect
    # and get_entries, which load them twice).
    "social_amazon_link.pipelines.disconnect_entries",
    # social-core: remove them (the very rows checked).
    "social_core.pipeline.disconnect.disconnect",
    # Record each removed link.
    "social_amazon_link.pipelines.record_unlink",
)
