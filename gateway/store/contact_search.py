"""Finding contacts (``GET /v1/contacts``): the query both backends run, built once here.

Every kind of search is one index range read in the order of the index, stopped after one
page, never a scan of the contacts:

- by ``external_id`` (and ``channel_id``): ``identities_external``;
- by ``email`` or ``phone``: ``contacts_email`` / ``contacts_phone`` (their value, then id);
- by name (``q``): ``contact_names``, keyed (tail, contact id), one row per word of the
  contact's folded name with the rest of the name after it (``kernel.text.name_tails``:
  no diacritics, no case, đ -> d; "nguyen van an", "van an", "an"). The folded ``q`` is
  the start of a tail: its words, in order, begin a run of the name's words, the last one
  possibly cut short ("nguyen van a" and "van an" find "Nguyễn Văn An"; "nguyen an" does
  not). All the contacts a ``q`` finds are one range of the index, read in (tail, contact)
  order;
- by ``channel_id`` alone: ``identities_channel``;
- nothing: the contacts in id order.

Only contacts not merged away are found (a merge moves identities to the survivor). The
index read drives the query: SQLite's CROSS JOIN and PostgreSQL's LATERAL keep a planner
from reading the contacts first. The SQL uses ``?`` placeholders; PostgreSQL's are
numbered by :func:`numbered`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kernel.errors import Malformed
from kernel.pages import decode_cursor, encode_cursor
from kernel.text import MAX_TAIL, fold_name, name_tails

_TOP = "\U0010ffff"  # above every character: [p, p + _TOP) is every text p begins


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
    """One page's SQL (selecting ``id, name_key`` and, by name, ``tail``)."""

    sql: str
    args: list[Any] = field(default_factory=list)
    # by name: the folded q, and the page is in (tail, id) order
    prefix: str | None = None


def name_prefix(q: str) -> str:
    """The folded name query; Malformed when it has no letter or digit."""
    folded = fold_name(q)[:MAX_TAIL]
    if not folded.strip():
        raise Malformed("q has no letters or digits to search for", code="invalid_query")
    return folded.strip()


def plan(query: ContactQuery, cursor: str | None, limit: int, *, postgres: bool = False) -> Plan:
    """The SQL that reads one page (``limit + 1`` rows) after ``cursor``."""
    after = decode_cursor(cursor)
    where: list[str] = []
    args: list[Any] = []
    prefix: str | None = None
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
    elif query.q is not None:
        prefix = name_prefix(query.q)
        table, key = "contact_names n", "n.contact_id"
        where.append("n.tail >= ? AND n.tail < ?")
        args += [prefix, prefix + _TOP]
        order = "n.tail, n.contact_id"
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
        # reads the contacts first.
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
    if query.q is not None and prefix is None:
        where.append("(' ' || c.name_key) LIKE ?")
        args.append(f"% {name_prefix(query.q)}%")
    if query.channel_id is not None and not table.startswith("identities"):
        where.append(
            "(SELECT 1 FROM identities x WHERE x.contact_id = c.id AND x.channel_id = ? "
            "LIMIT 1) IS NOT NULL"
        )
        args.append(query.channel_id)
    if after is not None:
        if prefix is not None:
            tail, _, last = after.rpartition(" ")
            if not tail or not last:
                raise Malformed("invalid cursor", code="invalid_cursor")
            where.append("(n.tail > ? OR (n.tail = ? AND n.contact_id > ?))")
            args += [tail, tail, last]
        else:
            where.append(f"{order} > ?")
            args.append(after)
    column = ", n.tail" if prefix is not None else ""
    sql = (
        f"SELECT {key or 'c.id'} AS id, c.name_key{column} FROM {source} "
        f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?"
    )
    args.append(limit + 1)
    return Plan(sql, args, prefix)


def page_ids(found: Sequence[Any], plan: Plan, limit: int) -> tuple[list[str], str | None]:
    """The contact ids of one page, in order, and the next page's cursor.

    By name, a contact has a row for each of its tails the query begins ("an" begins
    "an", "anh" and "an nguyen" of "Trần An Nguyên Anh"): only the row of the first such
    tail counts, so each contact shows once. By identities, the rows of one contact come
    together (the next page starts after its id).
    """
    more = len(found) > limit
    rows = found[:limit]
    ids: list[str] = []
    for row in rows:
        if ids and ids[-1] == str(row[0]):
            continue
        if plan.prefix is not None:
            tails = [t for t in name_tails(str(row[1])) if t.startswith(plan.prefix)]
            if not tails or min(tails) != row[2]:
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
