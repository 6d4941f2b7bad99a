"""Which bot takes a new conversation, and a customer asking for a person, in any
spelling of Vietnamese."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from config.bots import BotSettings
from gateway.domain.bots import BotRules
from kernel.webhook_signing import new_secret

RULES = BotRules(
    (
        BotSettings(id="a", url="https://b.example/a", secret=new_secret(), channels=["web"]),
        BotSettings(
            id="b",
            url="https://b.example/b",
            secret=new_secret(),
            channels=["web", "fb"],
            routing_rules=["vip"],
            handover_phrases=["gọi lại cho tôi"],
        ),
    )
)


def test_the_first_bot_naming_the_channel_or_the_rule_takes_it() -> None:
    assert RULES.for_new("web", None).id == "a"  # type: ignore[union-attr]
    assert RULES.for_new("fb", None).id == "b"  # type: ignore[union-attr]
    assert RULES.for_new("web", "vip").id == "b"  # type: ignore[union-attr]
    assert RULES.for_new("zalo", None) is None


def test_an_empty_app_id_is_no_app() -> None:
    bot = BotSettings(id="c", url="https://b.example/c", secret=new_secret(), facebook_app_id="")
    assert bot.facebook_app_id is None
    assert BotRules((bot,)).for_app("") is None


def test_phrases_match_without_diacritics_case_or_composition() -> None:
    for text in [
        "cho em gặp nhân viên",
        "CHO EM GAP NHAN VIEN",
        unicodedata.normalize("NFD", "Cần tư vấn viên hỗ trợ"),
        "I want an agent, please",
    ]:
        assert RULES.asks_for_person("a", text), text
    for text in ["nhân viên giao hàng tới chưa", "agents of change", "", "gặp"]:
        assert not RULES.asks_for_person("a", text), text
    # Each bot its own phrases; a bot no longer configured: anyone's.
    assert RULES.asks_for_person("b", "Gọi lại cho tôi nhé")
    assert not RULES.asks_for_person("b", "gặp nhân viên")
    assert RULES.asks_for_person("gone", "gặp nhân viên")


@given(st.text(max_size=300), st.text(max_size=300))
def test_a_phrase_anywhere_among_other_words_is_found(before: str, after: str) -> None:
    text = f"{before} Gặp Nhân Viên {after}"
    assert RULES.asks_for_person("a", text)
    RULES.asks_for_person("a", before)  # any text: an answer, never an error
