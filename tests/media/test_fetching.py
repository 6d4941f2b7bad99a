"""Fetching a provider's file without respx in the way: the address guard at connection
time against a real local server, and the checks of what arrived, fuzzed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from config.schema import AttachmentSettings
from connectors.webchat.parse import file_link_ok, sign_file
from gateway.attachments import sniff_image
from gateway.media import Failure, MediaFetcher, check_type
from kernel.models import MediaPart
from tests.media.images import gif, png

PHOTO = png(9, 7)


@pytest.fixture
async def local_cdn() -> AsyncIterator[TestServer]:
    async def photo(request: web.Request) -> web.Response:
        return web.Response(body=PHOTO, content_type="image/png")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    app = web.Application()
    app.router.add_get("/photo.png", photo)
    app.router.add_get("/moved", moved)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


async def fetch(url: str, **settings: bool) -> bytes:
    fetcher = MediaFetcher(AttachmentSettings(**settings), max_bytes=1_000_000)
    try:
        return (await fetcher.fetch(MediaPart(type="image", url=url))).data
    finally:
        await fetcher.aclose()


async def test_the_guard_checks_the_address_a_name_resolves_to(local_cdn: TestServer) -> None:
    by_name = f"http://localhost:{local_cdn.port}/photo.png"
    with pytest.raises(Failure) as refused:
        await fetch(by_name)
    assert refused.value.code == "unsafe_url" and "loopback" in refused.value.reason
    assert not refused.value.retryable
    assert await fetch(by_name, allow_loopback=True) == PHOTO


async def test_redirects_are_checked_at_every_hop(local_cdn: TestServer) -> None:
    start = f"http://localhost:{local_cdn.port}/moved?to="
    with pytest.raises(Failure) as refused:
        await fetch(start + "http://169.254.169.254/latest/meta-data/", allow_loopback=True)
    assert refused.value.code == "unsafe_url" and "link-local" in refused.value.reason
    with pytest.raises(Failure) as private:
        await fetch(start + "http://192.168.1.10/x.png", allow_loopback=True)
    assert "private network" in private.value.reason
    with pytest.raises(Failure) as scheme:
        await fetch(start + "file:///etc/passwd", allow_loopback=True)
    assert scheme.value.code == "unsafe_url"
    assert await fetch(start + "/photo.png", allow_loopback=True) == PHOTO


@pytest.mark.parametrize(
    ("kind", "data", "served", "kept_as"),
    [
        ("image", PHOTO, "image/jpeg", "image/png"),  # what the bytes are
        ("sticker", gif(), "image/webp", "image/gif"),
        ("file", b"%PDF-1.4", "application/pdf", "application/pdf"),
        ("video", b"\x00\x00\x00\x18ftypmp42", "video/mp4", "video/mp4"),
        ("audio", b"#!AMR\n", "application/octet-stream", "application/octet-stream"),
    ],
)
def test_what_is_kept(kind: str, data: bytes, served: str, kept_as: str) -> None:
    part = MediaPart(type=kind, url="https://cdn.example/x")  # type: ignore[arg-type]
    assert check_type(part, data, served) == kept_as


@pytest.mark.parametrize(
    ("kind", "data", "served"),
    [
        ("image", b"<!DOCTYPE html><title>Login</title>", "text/html"),
        ("image", b'{"error": "expired"}', "application/json"),
        ("file", b"\n  <html><body>Not found</body></html>", "application/pdf"),
        ("video", b"Access denied", "text/plain"),
    ],
)
def test_what_is_refused(kind: str, data: bytes, served: str) -> None:
    part = MediaPart(type=kind, url="https://cdn.example/x")  # type: ignore[arg-type]
    with pytest.raises(Failure) as refused:
        check_type(part, data, served)
    assert refused.value.code == "unexpected_type" and not refused.value.retryable


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["image", "audio", "video", "file", "sticker"]),
    data=st.binary(max_size=64),
    served=st.sampled_from(["", "image/png", "text/html", "application/octet-stream", "video/mp4"]),
    name=st.one_of(st.none(), st.text(max_size=20)),
)
def test_checks_of_any_bytes_answer_a_type_or_a_reason(
    kind: str, data: bytes, served: str, name: str | None
) -> None:
    part = MediaPart(type=kind, url="https://cdn.example/x", name=name or None)  # type: ignore[arg-type]
    kept: str | Failure
    try:
        kept = check_type(part, data, served)
    except Failure as exc:
        kept = exc
    if isinstance(kept, Failure):
        assert kept.code == "unexpected_type" and kept.reason
    else:
        assert "/" in kept
        if kind in ("image", "sticker"):
            assert kept == sniff_image(data)


@settings(max_examples=300, deadline=None)
@given(expires=st.text(max_size=20), signature=st.text(max_size=80), att=st.text(max_size=30))
def test_links_to_files_are_only_those_signed(expires: str, signature: str, att: str) -> None:
    key = b"k" * 32
    assert not file_link_ok(key, "webchat", att, expires, signature)
    good = sign_file(key, "webchat", "att_01JB0000000000000000000000", 4_000_000_000)
    assert file_link_ok(key, "webchat", "att_01JB0000000000000000000000", "4000000000", good)
    assert not file_link_ok(key, "other", "att_01JB0000000000000000000000", "4000000000", good)
