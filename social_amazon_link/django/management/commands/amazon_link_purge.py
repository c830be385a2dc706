"""``manage.py amazon_link_purge``: delete what abandoned sign-ins and old events leave behind."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from social_amazon_link.django.strategy import load_strategy
from social_amazon_link.flow.purge import purge


class Command(BaseCommand):
    help = "Delete OAuth2 states, paused sign-ins, attempt counters and events too old to matter."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(purge(load_strategy()))
