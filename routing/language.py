"""Telling Vietnamese from English in a customer's first message.

Vietnamese is recognised by its letters (ă â đ ê ô ơ ư and the tone marks), and also
when typed without them ("cho minh hoi don hang"), by its very frequent short words.
"""

from __future__ import annotations

import re
import unicodedata

_VI_LETTERS = set("àáạảãâầấậẩẫăằắặẳẵèéẹẻẽêềếệểễìíịỉĩòóọỏõôồốộổỗơờớợởỡùúụủũưừứựửữỳýỵỷỹđ")
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)

# Frequent words once diacritics are stripped: high-signal ones only (no "a", "do", "me").
_VI_WORDS = frozenset(
    """
    khong duoc cua toi minh ban cho hoi nhe voi la gi nao roi chua em anh chi cam xin
    chao hang giao bao nhieu nay muon mua oi dat doi tra tien gia con het khi
    nhung nhu vay thi ma dang duong phuong tinh thanh pho sao lam giup ho gui nhan don
    mau ao quan vi cai chiec
    """.split()  # noqa: SIM905 (a word list reads better as text)
)
_EN_WORDS = frozenset(
    """
    the is are was were what how when where why my your our order please can could would
    you i to and of for with hello hi thanks thank have has do does not it this that
    from about help need want buy price ship shipping delivery refund return an
    """.split()  # noqa: SIM905 (a word list reads better as text)
)


def strip_diacritics(text: str) -> str:
    """Lower-case ASCII-ish form: "Hóa đơn" and "hoá đơn" both become "hoa don"."""
    decomposed = unicodedata.normalize("NFD", text.lower().replace("đ", "d"))
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


def detect_language(text: str) -> str | None:
    """ "vi", "en", or None when the text does not say."""
    lowered = text.lower()
    letters = [c for c in lowered if c.isalpha()]
    if not letters:
        return None
    marked = sum(1 for c in letters if c in _VI_LETTERS)
    if marked >= 2 or (marked and marked / len(letters) >= 0.05):
        return "vi"
    words = _WORD.findall(strip_diacritics(lowered))
    if not words:
        return None
    vi = sum(1 for w in words if w in _VI_WORDS)
    en = sum(1 for w in words if w in _EN_WORDS)
    if vi > en and vi >= 1 and (vi >= 2 or len(words) <= 3):
        return "vi"
    if en > vi and en >= 1:
        return "en"
    return None
