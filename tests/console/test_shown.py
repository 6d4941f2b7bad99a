"""How the console names people: their name, else what reaches them, else a visitor."""

from __future__ import annotations

from gateway.console.shown import who
from gateway.console.texts import translator

EN, VI = translator("en"), translator("vi")


def test_a_person_is_named_by_the_first_thing_known() -> None:
    base = {"display_name": None, "email": None, "phone": None, "identities": []}
    assert who({**base, "display_name": "Lan <b>"}, "ct_1", EN) == "Lan <b>"
    assert who({**base, "email": "lan@shop.vn", "phone": "+84912345678"}, "ct_1", EN) == (
        "lan@shop.vn"
    )
    assert who({**base, "phone": "+84912345678"}, "ct_1", EN) == "+84912345678"
    named = {**base, "identities": [{"display_name": None}, {"display_name": "Ngọc Trần"}]}
    assert who(named, "ct_1", EN) == "Ngọc Trần"
    assert who(base, "ct_01M934NRSG71306TG8SG26ZT00", EN) == "Visitor …26ZT00"
    assert who(None, "ct_01M934NRSG71306TG8SG26ZT00", VI) == "Khách …26ZT00"


def test_only_web_urls_become_links_or_images() -> None:
    from gateway.console.shown import own_file, web_link

    assert web_link(" https://shop.vn/don-hang ") == "https://shop.vn/don-hang"
    for bad in ("javascript:alert(1)", "data:text/html,x", "http://[::1/x", "https://", 3):
        assert web_link(bad) is None, bad
    assert own_file({"url": "http://[::1/v1/attachments/x"}) is None
    assert own_file({"url": "javascript:/v1/attachments/att_1"}) is None
