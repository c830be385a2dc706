"""social-core 7's own Amazon backend, pointed at the bench's stand-in for Amazon.

The hosts are all this module changes: the class constants name
``https://api.amazon.com`` and ``https://www.amazon.com``, and ``user_data``
has the profile URL written into it, so the subclass swaps those URLs for the
delay proxy's and leaves every request as social-core sends it (the token in
the query string, ``requests.request`` and so a new connection per call).
"""

from __future__ import annotations

import os
from typing import Any

from social_core.backends.amazon import AmazonOAuth2

__all__ = ["AMAZON_API", "StockAmazonOAuth2", "point_at"]

AMAZON_API = "https://api.amazon.com"
#: Read by :func:`point_at` in processes started by the bench (the load test's workers).
ENVIRONMENT = "BENCH_STOCK_API_URL"


class StockAmazonOAuth2(AmazonOAuth2[Any]):
    """``social_core.backends.amazon.AmazonOAuth2`` with the bench's hosts."""

    api_url = AMAZON_API

    def request(self, url: str, **kwargs: Any) -> Any:
        # user_data() has Amazon's profile URL written into it: the same
        # request, sent to the proxy.
        if url.startswith(AMAZON_API + "/"):
            url = self.api_url + url[len(AMAZON_API) :]
        return super().request(url, **kwargs)


def point_at(api_url: str) -> None:
    """Aim the stock backend at ``api_url`` (authorize page, token and profile)."""
    api_url = api_url.rstrip("/")
    StockAmazonOAuth2.api_url = api_url
    StockAmazonOAuth2.AUTHORIZATION_URL = f"{api_url}/ap/oa"
    StockAmazonOAuth2.ACCESS_TOKEN_URL = f"{api_url}/auth/o2/token"


if os.environ.get(ENVIRONMENT):
    point_at(os.environ[ENVIRONMENT])
