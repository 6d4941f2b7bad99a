"""Reading the values a console page's tables and attributes hold."""

from __future__ import annotations

import re
from html.parser import HTMLParser


class _Rows(HTMLParser):
    """Rows of the table with ``table_id`` that carry ``row_attr``: their ``data-value``
    cells in order."""

    def __init__(self, table_id: str, row_attr: str) -> None:
        super().__init__(convert_charrefs=True)
        self.table_id, self.row_attr = table_id, row_attr
        self.inside = False
        self.row: str | None = None
        self.rows: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table" and found.get("id") == self.table_id:
            self.inside = True
        elif self.inside and tag == "tr" and self.row_attr in found:
            self.row = found[self.row_attr] or ""
            self.rows[self.row] = []
        elif self.inside and self.row is not None and tag == "td" and "data-value" in found:
            self.rows[self.row].append(found["data-value"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self.inside:
            self.inside = False
        elif tag == "tr":
            self.row = None


def table_rows(html: str, table_id: str, row_attr: str) -> dict[str, list[str]]:
    parser = _Rows(table_id, row_attr)
    parser.feed(html)
    return parser.rows


def attribute(html: str, name: str) -> str:
    found = re.search(rf'{name}="([^"]*)"', html)
    assert found is not None, name
    return found.group(1)
