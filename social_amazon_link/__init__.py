"""Login with Amazon for apps that already have their own accounts."""

from __future__ import annotations

__version__ = "0.1.0"
