"""Finding contacts (``GET /v1/contacts``): the query both backends run, built once here.

Every kind of search is an index range read in the order of the index, stopped after one
page, never a scan of the contacts:

- by ``external_id`` (and ``channel_id``): ``identities_external``;
- by ``email`` or ``phone``: ``contacts_email`` / ``contacts_phone`` (their value, then id);
- by name (``q``): ``contact_words``, one row per distinct word of a contact's folded name
  (``kernel.text.fold_name``: no diacritics, no case, đ -> d), keyed (word, contact id).
  Every word of ``q`` but the last is a whole word, the last one a prefix ("nguyen van a"
  finds "Nguyễn Văn An"). The rows of one word are read, in contact order (or, for the
  prefix, the range of words it begins, in (word, contact) order), and the other words
  are checked on the folded name. That word is the rarest: each word's rows are first
  counted up to COUNT_CAP (a few thousand index entries at most); among words at the cap
  the rightmost is read (a given name is rarer than a family name: Nguyễn is 38%);
- by ``channel_id`` alone: ``identities_channel``;
- nothing: the contacts in id order.

Only contacts not merged away are found (a merge moves identities to the survivor).
The index read drives the query: SQLite's CROSS JOIN and PostgreSQL's LATERAL keep the
planner from reading the contacts first. The SQL uses ``?`` placeholders; PostgreSQL's
are numbered by :func:`numbered`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kernel.errors import Malformed
from kernel.pages import decode_cursor, encode_cursor
from kernel.text import fold_name

MAX_WORD = 64  # kernel.text.name_words keeps words up to this long
MAX_QUERY_WORDS = 8
_TOP = "\U0010ffff"  # above every character: [p, p + _TOP) is every word p begins


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
    """One page's SQL (selecting ``id, name_key`` and, by a prefix, ``word``); no SQL
    when nothing can match."""

    sql: str | None
    args: list[Any] = field(default_factory=list)
    # by the words a prefix begins: the page is in (word, id) order
    prefix: str | None = None


def query_words(q: str) -> list[str]:
    """The folded words of a name query; Malformed when it has none."""
    words = [w[:MAX_WORD] for w in fold_name(q).split()]
    if not words:
        raise Malformed("q has no letters or digits to search for", code="invalid_query")
    if len(words) > MAX_QUERY_WORDS:
        raise Malformed(f"q has more than {MAX_QUERY_WORDS} words", code="invalid_query")
    return words


# Words of a query are counted in the index up to this many rows each: the page is read
# from the rarest (the rightmost of those at the cap: a given name before a family name).
COUNT_CAP = 5000


def counting(query: ContactQuery) -> tuple[str, list[Any]] | None:
    """For a name query of several words, SQL giving one row: how many index rows each
    word has (whole words, then the last as a prefix), up to COUNT_CAP. None otherwise."""
    if query.q is None or query.external_id is not None:
        return None
    if query.email is not None or query.phone is not None:
        return None
    words = query_words(query.q)
    if len(words) < 2:
        return None
    parts: list[str] = []
    args: list[Any] = []
    for i, word in enumerate(words):
        if i < len(words) - 1:
            cond = "word = ?"
            args.append(word)
        else:
            cond = "word >= ? AND word < ?"
            args += [word, word + _TOP]
        parts.append(
            f"(SELECT count(*) FROM (SELECT 1 FROM contact_words WHERE {cond} LIMIT ?) AS t{i})"
        )
        args.append(COUNT_CAP)
    return "SELECT " + ", ".join(parts), args


def plan(
    query: ContactQuery,
    cursor: str | None,
    limit: int,
    *,
    postgres: bool = False,
    counts: list[int] | None = None,
) -> Plan:
    """The SQL that reads one page (``limit + 1`` rows) after ``cursor``; ``counts`` is
    the row of :func:`counting` for a name query of several words."""
    after = decode_cursor(cursor)
    words = query_words(query.q) if query.q is not None else []
    where: list[str] = []
    args: list[Any] = []
    prefix: str | None = None
    driver: int | None = None  # the word of q whose index rows are read
    if query.external_id is not None:
        table, key = "identities i", "i.contact_id"
        where.append("i.external_id = ?")
        args.append(query.external_id)
        if query.channel_id is not None:
            where.append("i.channel_id = ?")
            args.append(query.channel_id)
        order = key
    elif query.email is not None or query.phone is not None:
        table = key = ""
        order = "c.id"
    elif words:
        if counts is not None and 0 in counts:
            return Plan(None)
        driver = len(words) - 1
        if counts is not None:
            least = min(counts)
            driver = max(i for i, n in enumerate(counts) if n == least)
        table, key = "contact_words w", "w.contact_id"
        if driver == len(words) - 1:
            prefix = words[driver]
            where.append("w.word >= ? AND w.word < ?")
            args += [prefix, prefix + _TOP]
            order = "w.word, w.contact_id"
        else:
            where.append("w.word = ?")
            args.append(words[driver])
            order = key
    elif query.channel_id is not None:
        table, key = "identities i", "i.contact_id"
        where.append("i.channel_id = ?")
        args.append(query.channel_id)
        order = key
    else:
        table = key = ""
        order = "c.id"
    if not table:
        source = "contacts c"
    elif postgres:
        # One contact looked up per index row, in the index's order: never a plan that
        # reads the contacts first (PostgreSQL cannot guess how rare a name's words are).
        source = (
            f"{table} CROSS JOIN LATERAL (SELECT id, name_key, phone, email, merged_into "
            f"FROM contacts WHERE id = {key} OFFSET 0) c"
        )
    else:
        source = f"{table} CROSS JOIN contacts c"  # SQLite: the left table is the outer loop
        where.append(f"c.id = {key}")
    where.append("c.merged_into IS NULL")
    # every other filter is checked on the rows the index gives
    if query.email is not None:
        where.append("c.email = ?")
        args.append(query.email)
    if query.phone is not None:
        where.append("c.phone = ?")
        args.append(query.phone)
    for i, word in enumerate(words):
        if i == driver:
            continue
        if i < len(words) - 1:
            where.append("(' ' || c.name_key || ' ') LIKE ?")
            args.append(f"% {word} %")
        else:
            where.append("(' ' || c.name_key) LIKE ?")
            args.append(f"% {word}%")
    if query.channel_id is not None and not table.startswith("identities"):
        where.append(
            "(SELECT 1 FROM identities x WHERE x.contact_id = c.id AND x.channel_id = ? "
            "LIMIT 1) IS NOT NULL"
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
    column = ", w.word" if prefix is not None else ""
    selected = key or "c.id"
    sql = (
        f"SELECT {selected} AS id, c.name_key{column} FROM {source} "
        f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?"
    )
    args.append(limit + 1)
    return Plan(sql, args, prefix)


def page_ids(found: Sequence[Any], plan: Plan, limit: int) -> tuple[list[str], str | None]:
    """The contact ids of one page, in order, and the next page's cursor.

    By a prefix, a contact has a row for each of its words the prefix begins: only the
    row of the first such word counts, so each contact shows once. By identities, the
    rows of one contact come together (the next page starts after its id).
    """
    more = len(found) > limit
    rows = found[:limit]
    ids: list[str] = []
    for row in rows:
        if ids and ids[-1] == str(row[0]):
            continue  # one contact, several identities: its rows are next to each other
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
