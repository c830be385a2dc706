"""Read an HTML form the way a browser submits it (for tests without a browser)."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.radios: dict[str, list[str]] = {}
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self._in_form = True
            self.action = a.get("action", "")
        elif tag == "form":
            self._in_form = False
        elif self._in_form and tag == "input" and "name" in a:
            kind = a.get("type", "text")
            if kind == "radio":
                self.radios.setdefault(a["name"], []).append(a.get("value", ""))
            elif kind not in ("submit", "button"):
                self.fields[a["name"]] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def first_form(html: str, page_url: str) -> tuple[str, dict[str, str], dict[str, list[str]]]:
    """The first form's absolute action, its field values and its radio choices."""
    parser = _FormParser()
    parser.feed(html)
    assert parser.action is not None, "the page has no form"
    return urljoin(page_url, parser.action), parser.fields, parser.radios
