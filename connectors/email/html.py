"""HTML of received mail (pure): sanitising it, pointing inline images at stored files, and
reading it as plain text.

HTML is sanitised with nh3 (the Ammonia sanitiser) before anyone can render it: no
scripts, styles, event handlers or javascript: URLs. Mail without a text/plain body gets
its text from the HTML, with blockquotes as "> " lines so that reply extraction
(:mod:`connectors.email.quotes`) can find the quoted history.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import nh3

_SANITIZE_TAGS = set(nh3.ALLOWED_TAGS) | {"font"}
_SANITIZE_ATTRIBUTES = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "img": {"src", "alt", "title", "width", "height"},
    "a": {"href", "title"},
    "font": {"color"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align"},
    "blockquote": {"cite", "type"},
}


def sanitize_html(value: str) -> str:
    """HTML safe to render: no scripts, styles, event handlers or javascript: URLs."""
    return nh3.clean(
        value,
        tags=_SANITIZE_TAGS,
        attributes=_SANITIZE_ATTRIBUTES,
        clean_content_tags={"script", "style", "title", "head"},
        url_schemes={"http", "https", "mailto", "tel", "cid"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


_CID_SRC = re.compile(r"""(src=")cid:([^"]+)(")""", re.IGNORECASE)


def rewrite_cids(sanitized: str, urls: dict[str, str]) -> str:
    """Point ``src="cid:..."`` at stored inline images (unknown ones are dropped)."""

    def sub(m: re.Match[str]) -> str:
        url = urls.get(html.unescape(m.group(2)).strip("<>").lower())
        return f"{m.group(1)}{html.escape(url, quote=True)}{m.group(3)}" if url else 'src=""'

    return _CID_SRC.sub(sub, sanitized)


class _TextFromHtml(HTMLParser):
    _BLOCK = frozenset(
        {
            *("address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt"),
            *("footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li"),
            *("main", "nav", "ol", "p", "pre", "section", "table", "tr", "ul"),
        }
    )
    _SKIP = frozenset({"script", "style", "head", "title", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.quote_depth = 0
        self.skip = 0
        self.pre = 0

    def _flush(self) -> None:
        text = "".join(self.current)
        if not self.pre:
            text = re.sub(r"[ \t\r\n\f\u00a0]+", " ", text).strip()
        prefix = "> " * self.quote_depth
        self.lines.append(prefix + text if text or self.quote_depth else text)
        self.current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skip += 1
        elif tag in self._BLOCK:
            if self.current or tag == "br":
                self._flush()
            if tag == "blockquote":
                self.quote_depth += 1
            elif tag == "pre":
                self.pre += 1
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.current.append(f"[{alt}]")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self._BLOCK:
            if self.current:
                self._flush()
            if tag == "blockquote":
                self.quote_depth = max(0, self.quote_depth - 1)
            elif tag == "pre":
                self.pre = max(0, self.pre - 1)
            elif tag in ("p", "div", "table", "ul", "ol") and self.lines and self.lines[-1]:
                self.lines.append("")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.current.append(data)

    def text(self) -> str:
        if self.current:
            self._flush()
        out: list[str] = []
        for line in self.lines:
            if not line.strip() and out and not out[-1].strip():
                continue  # one blank line at most
            out.append(line.rstrip())
        return "\n".join(out).strip()


def html_to_text(value: str) -> str:
    """Readable plain text from HTML; blockquotes become "> " lines."""
    parser = _TextFromHtml()
    try:
        parser.feed(value)
        parser.close()
    except Exception:
        return re.sub(r"<[^>]*>", " ", value)
    return parser.text()
