"""Finding contacts (``GET /v1/contacts``): the query both backends run, built once here.

Every kind of search is an index range read in the order of the index, stopped after one
page, never a scan of the contacts:

- by ``external_id`` (and ``channel_id``): ``identities_external``;
- by ``email`` or ``phone``: ``contacts_email`` / ``contacts_phone`` (their value, then id);
- by name (``q``): ``contact_words``, one row per distinct word of a contact's folded name
  (``kernel.text.fold_name``: no diacritics, no case, đ -> d), keyed (word, contact id).
  Every word of ``q`` but the last is a whole word, the last one a prefix ("nguyen van a"
  finds "Nguyễn Văn An"). A query of several words reads the rows of its longest whole
  word, in contact order, and checks the other words on the folded name; a query of one
  word reads the range of words it begins, in (word, contact) order;
- by ``channel_id`` alone: ``identities_channel``;
- nothing: the contacts in id order.

Only contacts not merged away are found (a merge moves identities to the survivor).
The SQL uses ``?`` placeholders; PostgreSQL's are numbered by :func:`numbered`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kernel.errors import Malformed
from kernel.pages import decode_cursor, encode_cursor
from kernel.text import fold_name

MAX_WORD = 64  # kernel.text.name_words keeps words up to this long
MAX_QUERY_WORDS = 8


@dataclass(frozen=True)
class ContactQuery:
    """What to find; values already normalised (E.164 phone, lower-cased e-mail)."""

    q: str | None = None
    phone: str | None = None
    email: str | None = None
    channel_id: str | None = None
    external_id: str | None = None


@dataclass
class Plan:
    """One page's SQL (selecting ``id, name_key`` and, by name, ``word``)."""

    sql: str
    args: list[Any] = field(default_factory=list)
    # by the words a single-word query begins: the page is in (word, id) order
    prefix: str | None = None


def query_words(q: str) -> list[str]:
    """The folded words of a name query; Malformed when it has none."""
    words = [w[:MAX_WORD] for w in fold_name(q).split()]
    if not words:
        raise Malformed("q has no letters or digits to search for", code="invalid_query")
    if len(words) > MAX_QUERY_WORDS:
        raise Malformed(f"q has more than {MAX_QUERY_WORDS} words", code="invalid_query")
    return words


def plan(query: ContactQuery, cursor: str | None, limit: int) -> Plan:
    """The SQL that reads one page (``limit + 1`` rows) after ``cursor``."""
    after = decode_cursor(cursor)
    words = query_words(query.q) if query.q is not None else []
    where: list[str] = ["c.merged_into IS NULL"]
    args: list[Any] = []
    prefix: str | None = None
    if query.external_id is not None:
        source = "identities i JOIN contacts c ON c.id = i.contact_id"
        where.append("i.external_id = ?")
        args.append(query.external_id)
        if query.channel_id is not None:
            where.append("i.channel_id = ?")
            args.append(query.channel_id)
        order = "c.id"
    elif query.email is not None or query.phone is not None:
        source = "contacts c"
        order = "c.id"
    elif len(words) > 1:
        driving = max(words[:-1], key=len)
        source = "contact_words w JOIN contacts c ON c.id = w.contact_id"
        where.append("w.word = ?")
        args.append(driving)
        order = "w.contact_id"
    elif words:
        prefix = words[0]
        source = "contact_words w JOIN contacts c ON c.id = w.contact_id"
        where.append("w.word >= ? AND w.word < ?")
        args += [prefix, prefix + "\U0010ffff"]
        order = "w.word, w.contact_id"
    elif query.channel_id is not None:
        source = "identities i JOIN contacts c ON c.id = i.contact_id"
        where.append("i.channel_id = ?")
        args.append(query.channel_id)
        order = "i.contact_id"
    else:
        source = "contacts c"
        order = "c.id"
    # every other filter is checked on the rows the index gives
    if query.email is not None:
        where.append("c.email = ?")
        args.append(query.email)
    if query.phone is not None:
        where.append("c.phone = ?")
        args.append(query.phone)
    if len(words) > 1:
        for word in words[:-1]:
            where.append("(' ' || c.name_key || ' ') LIKE ?")
            args.append(f"% {word} %")
        where.append("(' ' || c.name_key) LIKE ?")
        args.append(f"% {words[-1]}%")
    if query.channel_id is not None and not source.startswith("identities"):
        where.append(
            "EXISTS (SELECT 1 FROM identities x WHERE x.contact_id = c.id AND x.channel_id = ?)"
        )
        args.append(query.channel_id)
    if after is not None:
        if prefix is not None:
            word, _, last = after.partition(" ")
            if not last:
                raise Malformed("invalid cursor", code="invalid_cursor")
            where.append("(w.word > ? OR (w.word = ? AND w.contact_id > ?))")
            args += [word, word, last]
        else:
            where.append(f"{order} > ?")
            args.append(after)
    distinct = "DISTINCT " if source.startswith("identities") else ""
    word = ", w.word" if prefix is not None else ""
    sql = (
        f"SELECT {distinct}{order.split(',')[-1].strip()} AS id, c.name_key{word} FROM {source} "
        f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?"
    )
    args.append(limit + 1)
    return Plan(sql, args, prefix)


def page_ids(found: list[Any], plan: Plan, limit: int) -> tuple[list[str], str | None]:
    """The contact ids of one page, in order, and the next page's cursor.

    By a prefix, a contact has a row for each of its words the prefix begins: only the
    row of the first such word counts, so each contact shows once.
    """
    more = len(found) > limit
    rows = found[:limit]
    ids: list[str] = []
    for row in rows:
        if plan.prefix is not None:
            first = min(
                (w[:MAX_WORD] for w in str(row[1]).split() if w[:MAX_WORD].startswith(plan.prefix)),
                default=None,
            )
            if first != row[2]:
                continue
        ids.append(str(row[0]))
    cursor = None
    if more and rows:
        last = rows[-1]
        key = f"{last[2]} {last[0]}" if plan.prefix is not None else str(last[0])
        cursor = encode_cursor(key)
    return ids, cursor


_MARK = re.compile(r"\?")


def numbered(sql: str) -> str:
    """PostgreSQL's ``$1, $2...`` for the ``?`` placeholders (the SQL holds no other ?)."""
    counter = iter(range(1, 10_000))
    return _MARK.sub(lambda _: f"${next(counter)}", sql)
