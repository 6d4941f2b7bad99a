"""HTML mail: sanitised before anyone renders it, and read as text with quotes kept."""

from __future__ import annotations

from connectors.email.html import html_to_text, sanitize_html
from tests.email.helpers import load


def test_html_is_sanitised_and_text_is_derived() -> None:
    mail = load("html_only.eml")
    assert mail.html is not None
    for bad in ("<script", "alert(", "onclick", "onerror", "javascript:", "<style"):
        assert bad not in mail.html
    assert 'href="https://shop.example/orders/9"' in mail.html
    assert "<b>đổi size</b>" in mail.html
    assert "Bạn cần hỗ trợ gì ạ?" in mail.text  # blockquote kept in the full text...
    assert "> Bạn cần hỗ trợ gì ạ?" in html_to_text(mail.html)  # ...as a quote


def test_sanitiser_drops_dangerous_markup() -> None:
    dirty = (
        '<a href="javascript:x()" onmouseover="y()">a</a><iframe src="https://e"></iframe>'
        '<img src="data:image/png;base64,AAAA"><form action="/x"><input name=p></form>'
        '<div style="background:url(https://t.example/x)">d</div>'
    )
    clean = sanitize_html(dirty)
    for bad in ("javascript:", "onmouseover", "<iframe", "data:", "<form", "<input", "style="):
        assert bad not in clean
