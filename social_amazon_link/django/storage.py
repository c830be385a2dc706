"""The storage contract on social_django's models and this app's own (in progress)."""

from __future__ import annotations

from social_django.models import DjangoStorage as _SocialDjangoStorage


class DjangoStorage(_SocialDjangoStorage):
    pass
