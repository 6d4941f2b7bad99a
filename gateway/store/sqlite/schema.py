"""Versioned schema migrations for the SQLite backend. Append; never edit a released step."""

from __future__ import annotations

import sqlite3

from kernel.text import fold_name, name_tails

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE contacts (
            id              TEXT PRIMARY KEY,
            display_name    TEXT,
            phone           TEXT,
            phone_verified  INTEGER NOT NULL DEFAULT 0,
            email           TEXT,
            email_verified  INTEGER NOT NULL DEFAULT 0,
            created_at      INTEGER NOT NULL,
            merged_into     TEXT REFERENCES contacts(id)
        );
        CREATE INDEX contacts_merged ON contacts(merged_into) WHERE merged_into IS NOT NULL;
        CREATE INDEX contacts_verified_email ON contacts(email)
            WHERE email_verified = 1 AND merged_into IS NULL;
        CREATE INDEX contacts_verified_phone ON contacts(phone)
            WHERE phone_verified = 1 AND merged_into IS NULL;

        CREATE TABLE identities (
            channel_id          TEXT NOT NULL,
            external_id         TEXT NOT NULL,
            channel_type        TEXT NOT NULL,
            contact_id          TEXT NOT NULL REFERENCES contacts(id),
            original_contact_id TEXT NOT NULL REFERENCES contacts(id),
            display_name        TEXT,
            avatar_url          TEXT,
            created_at          INTEGER NOT NULL,
            PRIMARY KEY (channel_id, external_id)
        );
        CREATE INDEX identities_contact ON identities(contact_id);

        CREATE TABLE agents (
            id                  TEXT PRIMARY KEY,
            name                TEXT,
            skills              TEXT NOT NULL DEFAULT '{}',
            languages           TEXT NOT NULL DEFAULT '[]',
            capacity            TEXT NOT NULL DEFAULT '{}',
            presence            TEXT NOT NULL DEFAULT 'offline',
            presence_changed_at INTEGER,
            last_assigned_at    INTEGER NOT NULL DEFAULT 0,
            created_at          INTEGER NOT NULL,
            updated_at          INTEGER NOT NULL
        );

        CREATE TABLE conversations (
            id                 TEXT PRIMARY KEY,
            contact_id         TEXT NOT NULL REFERENCES contacts(id),
            channel_id         TEXT NOT NULL,
            channel_type       TEXT NOT NULL,
            recipient_id       TEXT NOT NULL,
            status             TEXT NOT NULL,
            assignee_id        TEXT,
            priority           INTEGER NOT NULL DEFAULT 0,
            skills             TEXT NOT NULL DEFAULT '[]',
            language           TEXT,
            subject            TEXT,
            created_at         INTEGER NOT NULL,
            first_response_at  INTEGER,
            resolved_at        INTEGER,
            last_message_at    INTEGER,
            last_inbound_at    INTEGER,
            queued_at          INTEGER,
            queue_announced    INTEGER NOT NULL DEFAULT 0,
            excluded_agents    TEXT NOT NULL DEFAULT '[]'
        );
        CREATE UNIQUE INDEX conversations_one_open
            ON conversations(contact_id, channel_id) WHERE status != 'resolved';
        CREATE INDEX conversations_contact ON conversations(contact_id, id);
        CREATE INDEX conversations_queue ON conversations(priority DESC, queued_at, id)
            WHERE status = 'queued';
        CREATE INDEX conversations_assignee ON conversations(assignee_id, channel_type)
            WHERE status = 'assigned';
        CREATE INDEX conversations_status ON conversations(status, id);
        CREATE INDEX conversations_channel ON conversations(channel_id, id);

        CREATE TABLE messages (
            id               TEXT PRIMARY KEY,
            conversation_id  TEXT NOT NULL REFERENCES conversations(id),
            contact_id       TEXT NOT NULL,
            channel_id       TEXT NOT NULL,
            direction        TEXT NOT NULL,
            author_type      TEXT NOT NULL,
            author_id        TEXT,
            external_id      TEXT,
            parts            TEXT NOT NULL,
            reply_to         TEXT,
            created_at       INTEGER NOT NULL,
            status           TEXT NOT NULL,
            error            TEXT,
            idempotency_key  TEXT,
            request_hash     TEXT,
            attempts         INTEGER NOT NULL DEFAULT 0,
            next_attempt_at  INTEGER
        );
        CREATE UNIQUE INDEX messages_external ON messages(channel_id, external_id)
            WHERE external_id IS NOT NULL;
        CREATE UNIQUE INDEX messages_idempotency ON messages(conversation_id, idempotency_key)
            WHERE idempotency_key IS NOT NULL;
        CREATE INDEX messages_conversation ON messages(conversation_id, id);
        CREATE INDEX messages_contact ON messages(contact_id, id);
        CREATE INDEX messages_pending ON messages(next_attempt_at, id) WHERE status = 'pending';

        CREATE TABLE events (
            seq              INTEGER PRIMARY KEY AUTOINCREMENT,
            type             TEXT NOT NULL,
            created_at       INTEGER NOT NULL,
            conversation_id  TEXT,
            data             TEXT NOT NULL
        );
        CREATE INDEX events_conversation ON events(conversation_id, seq)
            WHERE conversation_id IS NOT NULL;

        CREATE TABLE routing_decisions (
            id               INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id  TEXT NOT NULL,
            created_at       INTEGER NOT NULL,
            agent_id         TEXT,
            explanation      TEXT NOT NULL
        );
        CREATE INDEX routing_decisions_conversation ON routing_decisions(conversation_id, id);

        CREATE TABLE api_tokens (
            id            TEXT PRIMARY KEY,
            name          TEXT NOT NULL,
            token_hash    TEXT NOT NULL UNIQUE,
            scopes        TEXT NOT NULL,
            agent_id      TEXT,
            created_at    INTEGER NOT NULL,
            last_used_at  INTEGER,
            revoked_at    INTEGER
        );
        """,
    ),
    (
        2,
        """
        CREATE INDEX conversations_recipient ON conversations(channel_id, recipient_id);
        """,
    ),
    (
        3,
        """
        ALTER TABLE messages ADD COLUMN reactions TEXT;

        CREATE TABLE raw_events (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            channel_id  TEXT NOT NULL,
            kind        TEXT NOT NULL,
            reason      TEXT NOT NULL,
            payload     TEXT NOT NULL,
            created_at  INTEGER NOT NULL
        );
        CREATE INDEX raw_events_channel ON raw_events(channel_id, id);

        CREATE TABLE channel_state (
            channel_id  TEXT NOT NULL,
            key         TEXT NOT NULL,
            value       TEXT NOT NULL,
            updated_at  INTEGER NOT NULL,
            PRIMARY KEY (channel_id, key)
        );

        CREATE TABLE attachments (
            id          TEXT PRIMARY KEY,
            channel_id  TEXT NOT NULL,
            name        TEXT,
            mime        TEXT NOT NULL,
            size        INTEGER NOT NULL,
            sha256      TEXT NOT NULL,
            path        TEXT NOT NULL,
            created_at  INTEGER NOT NULL
        );
        """,
    ),
    (
        4,
        """
        ALTER TABLE conversations ADD COLUMN required_skills TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE conversations ADD COLUMN routing_rule TEXT;
        ALTER TABLE conversations ADD COLUMN assigned_at INTEGER;
        ALTER TABLE conversations ADD COLUMN awaiting_since INTEGER;
        CREATE INDEX conversations_awaiting ON conversations(awaiting_since)
            WHERE status = 'assigned' AND awaiting_since IS NOT NULL;
        ALTER TABLE contacts ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE contacts ADD COLUMN last_agent_id TEXT;
        ALTER TABLE contacts ADD COLUMN last_served_at INTEGER;
        """,
    ),
    (
        5,
        """
        CREATE TABLE webhook_endpoints (
            id               TEXT PRIMARY KEY,
            url              TEXT NOT NULL,
            description      TEXT,
            events           TEXT NOT NULL DEFAULT '["*"]',
            source           TEXT NOT NULL DEFAULT 'api',
            secrets          TEXT NOT NULL,
            created_at       INTEGER NOT NULL,
            updated_at       INTEGER NOT NULL,
            disabled_at      INTEGER,
            disabled_reason  TEXT,
            cursor           INTEGER NOT NULL DEFAULT 0,
            failing_since    INTEGER,
            last_success_at  INTEGER
        );

        CREATE TABLE webhook_deliveries (
            endpoint_id      TEXT NOT NULL,
            event_seq        INTEGER NOT NULL,
            conversation_id  TEXT,
            status           TEXT NOT NULL,
            attempts         INTEGER NOT NULL DEFAULT 0,
            next_attempt_at  INTEGER,
            last_status_code INTEGER,
            last_error       TEXT,
            updated_at       INTEGER NOT NULL,
            PRIMARY KEY (endpoint_id, event_seq)
        );
        CREATE INDEX webhook_deliveries_due ON webhook_deliveries(endpoint_id, next_attempt_at)
            WHERE status = 'pending';
        CREATE INDEX webhook_deliveries_waiting
            ON webhook_deliveries(endpoint_id, conversation_id, event_seq)
            WHERE status = 'waiting';

        CREATE TABLE webhook_attempts (
            id               INTEGER PRIMARY KEY AUTOINCREMENT,
            endpoint_id      TEXT NOT NULL,
            event_seq        INTEGER NOT NULL,
            attempt          INTEGER NOT NULL,
            at               INTEGER NOT NULL,
            status_code      INTEGER,
            latency_ms       REAL,
            outcome          TEXT NOT NULL,
            error            TEXT,
            response         TEXT
        );
        CREATE INDEX webhook_attempts_endpoint ON webhook_attempts(endpoint_id, id);
        """,
    ),
    (
        6,
        """
        ALTER TABLE messages ADD COLUMN sent_at INTEGER;
        ALTER TABLE raw_events ADD COLUMN digest TEXT;
        CREATE UNIQUE INDEX raw_events_digest ON raw_events(channel_id, digest)
            WHERE digest IS NOT NULL;
        """,
    ),
    (
        7,
        """
        CREATE INDEX conversations_created ON conversations(created_at);
        """,
    ),
    (
        8,
        """
        CREATE TABLE api_channels (
            id          TEXT PRIMARY KEY,
            type        TEXT NOT NULL,
            sealed      TEXT NOT NULL,
            created_at  INTEGER NOT NULL,
            updated_at  INTEGER NOT NULL
        );
        """,
    ),
    (
        9,
        """
        -- The channel identity a message came from or was written to (its peer), so
        -- that a visitor's history is its own whatever contacts were merged. Earlier
        -- messages get the conversation's recipient, or, for a webchat visitor's own,
        -- the visitor its external id names ("<visitor>:<client id>").
        ALTER TABLE messages ADD COLUMN peer_id TEXT;
        UPDATE messages SET peer_id = (
            SELECT CASE
                WHEN c.channel_type = 'webchat' AND messages.direction = 'inbound'
                    AND instr(COALESCE(messages.external_id, ''), ':') > 1
                THEN substr(messages.external_id, 1, instr(messages.external_id, ':') - 1)
                ELSE c.recipient_id
            END
            FROM conversations c WHERE c.id = messages.conversation_id
        );
        CREATE INDEX messages_peer ON messages(channel_id, peer_id, id);
        """,
    ),
    (
        10,
        """
        -- Structured data beside a message's text (a quick reply's payload, a choice, an
        -- email's Cc): a JSON object, NULL when there is none.
        ALTER TABLE messages ADD COLUMN metadata TEXT;
        """,
    ),
    (
        11,
        """
        -- Developer payloads stored as text by earlier versions (a Messenger quick reply's
        -- or button's payload as a second text part "[quick reply payload] X" or
        -- "[postback payload] X") move into the message's metadata: the customer's words
        -- stay its only text.
        UPDATE messages SET
            metadata = json_patch(COALESCE(metadata, '{}'), (
                SELECT json_object(
                    'payload', CASE
                        WHEN json_extract(p.value, '$.text') LIKE '[quick reply payload] %'
                        THEN substr(json_extract(p.value, '$.text'), 23)
                        ELSE substr(json_extract(p.value, '$.text'), 20) END,
                    'payload_from', CASE
                        WHEN json_extract(p.value, '$.text') LIKE '[quick reply payload] %'
                        THEN 'quick_reply' ELSE 'postback' END)
                FROM json_each(messages.parts) p
                WHERE json_extract(p.value, '$.type') = 'text'
                    AND (json_extract(p.value, '$.text') LIKE '[quick reply payload] %'
                        OR json_extract(p.value, '$.text') LIKE '[postback payload] %')
                ORDER BY p.key LIMIT 1)),
            parts = (
                SELECT json_group_array(json(p.value)) FROM (
                    SELECT value FROM json_each(messages.parts)
                    WHERE NOT (json_extract(value, '$.type') = 'text'
                        AND (json_extract(value, '$.text') LIKE '[quick reply payload] %'
                            OR json_extract(value, '$.text') LIKE '[postback payload] %'))
                    ORDER BY key) p)
        WHERE direction = 'inbound'
            AND channel_id IN (SELECT DISTINCT channel_id FROM conversations
                               WHERE channel_type = 'facebook')
            AND EXISTS (
                SELECT 1 FROM json_each(messages.parts) p
                WHERE json_extract(p.value, '$.type') = 'text'
                    AND (json_extract(p.value, '$.text') LIKE '[quick reply payload] %'
                        OR json_extract(p.value, '$.text') LIKE '[postback payload] %'))
            AND EXISTS (
                SELECT 1 FROM json_each(messages.parts) p
                WHERE NOT (json_extract(p.value, '$.type') = 'text'
                    AND (json_extract(p.value, '$.text') LIKE '[quick reply payload] %'
                        OR json_extract(p.value, '$.text') LIKE '[postback payload] %')));
        """,
    ),
    (
        12,
        """
        -- Canned replies: rows with the same name are one reply's language variants.
        CREATE TABLE templates (
            id          TEXT PRIMARY KEY,
            name        TEXT NOT NULL,
            language    TEXT NOT NULL,
            body        TEXT NOT NULL,
            created_at  INTEGER NOT NULL,
            updated_at  INTEGER NOT NULL
        );
        CREATE UNIQUE INDEX templates_name_language ON templates(name, language);
        """,
    ),
    (
        13,
        """
        -- A contact erased at the person's request (its rows stay, anonymised, so that
        -- figures add up), and what the retention sweep looks for by age.
        ALTER TABLE contacts ADD COLUMN erased_at INTEGER;
        CREATE INDEX raw_events_created ON raw_events(created_at);
        CREATE INDEX webhook_attempts_at ON webhook_attempts(at);
        CREATE INDEX attachments_created ON attachments(created_at);
        CREATE INDEX conversations_resolved ON conversations(resolved_at)
            WHERE status = 'resolved';
        """,
    ),
    (
        14,
        """
        -- Reply windows: the closing time last announced (conversation.window_closing
        -- fires once per window), and the Idempotency-Key of the request that started a
        -- conversation from the business side (POST /v1/conversations).
        ALTER TABLE conversations ADD COLUMN window_warned_at INTEGER;
        ALTER TABLE conversations ADD COLUMN start_key TEXT;
        CREATE UNIQUE INDEX conversations_start_key ON conversations(start_key)
            WHERE start_key IS NOT NULL;
        CREATE INDEX conversations_last_inbound ON conversations(last_inbound_at)
            WHERE status != 'resolved';
        """,
    ),
    (
        15,
        """
        -- Finding contacts (gateway/store/contact_search.py): the folded name, its tails,
        -- and the e-mail, phone and identity indexes a search reads in order. The names
        -- already stored are folded after this step (FOLD_STEPS).
        ALTER TABLE contacts ADD COLUMN name_key TEXT NOT NULL DEFAULT '';
        CREATE TABLE contact_names (
            tail        TEXT NOT NULL,
            contact_id  TEXT NOT NULL REFERENCES contacts(id),
            PRIMARY KEY (tail, contact_id)
        ) WITHOUT ROWID;
        CREATE INDEX contacts_email ON contacts(email, id)
            WHERE merged_into IS NULL AND email IS NOT NULL;
        CREATE INDEX contacts_phone ON contacts(phone, id)
            WHERE merged_into IS NULL AND phone IS NOT NULL;
        CREATE INDEX identities_external ON identities(external_id);
        CREATE INDEX identities_channel ON identities(channel_id, contact_id);

        -- Two contacts separated by hand (an unmerge): nothing links them by itself again.
        -- One row per pair, the smaller id first.
        CREATE TABLE contacts_apart (
            low         TEXT NOT NULL REFERENCES contacts(id),
            high        TEXT NOT NULL REFERENCES contacts(id),
            created_at  INTEGER NOT NULL,
            PRIMARY KEY (low, high)
        ) WITHOUT ROWID;
        """,
    ),
    (
        16,
        """
        -- On email each thread is its own conversation, so a contact may have several
        -- open there, while chat channels keep one open conversation per contact and channel.
        DROP INDEX conversations_one_open;
        CREATE UNIQUE INDEX conversations_one_open ON conversations(contact_id, channel_id)
            WHERE status != 'resolved' AND channel_type != 'email';
        CREATE INDEX conversations_open ON conversations(contact_id, channel_id, id)
            WHERE status != 'resolved';
        """,
    ),
    (
        17,
        """
        -- Messages whose provider files (expiring CDN URLs) are still to be fetched into
        -- the attachment storage: written with the message, removed when every file is
        -- kept or given up. next_at is also pushed ahead while a process fetches.
        CREATE TABLE media_downloads (
            message_id  TEXT PRIMARY KEY,
            channel_id  TEXT NOT NULL,
            attempts    INTEGER NOT NULL DEFAULT 0,
            next_at     INTEGER NOT NULL,
            created_at  INTEGER NOT NULL
        );
        CREATE INDEX media_downloads_due ON media_downloads(next_at);
        """,
    ),
    (
        30,
        """
        -- Bots first: the bot holding a conversation (status 'bot'), and the bot a token
        -- of scope 'bot' speaks for.
        ALTER TABLE conversations ADD COLUMN bot_id TEXT;
        CREATE INDEX conversations_bot ON conversations(bot_id, awaiting_since)
            WHERE status = 'bot';
        ALTER TABLE api_tokens ADD COLUMN bot_id TEXT;
        """,
    ),
    (
        31,
        """
        -- A conversation's SLA clock (routing.sla, as JSON) and its off-hours reply.
        CREATE TABLE conversation_clocks (
            conversation_id  TEXT PRIMARY KEY,
            channel_id       TEXT NOT NULL,
            created_at       INTEGER NOT NULL,
            policy           TEXT,
            sla              TEXT,
            next_check       INTEGER,
            off_hours_until  INTEGER
        );
        CREATE INDEX conversation_clocks_next_check ON conversation_clocks(next_check)
            WHERE next_check IS NOT NULL;
        CREATE INDEX conversation_clocks_created ON conversation_clocks(created_at);
        """,
    ),
    (
        33,
        """
        -- Satisfaction surveys: one per resolved conversation, sent by a sweep when due.
        CREATE TABLE surveys (
            id               TEXT PRIMARY KEY,
            conversation_id  TEXT NOT NULL UNIQUE,
            contact_id       TEXT NOT NULL,
            channel_id       TEXT NOT NULL,
            channel_type     TEXT NOT NULL,
            agent_id         TEXT,
            language         TEXT,
            questions        TEXT NOT NULL,
            status           TEXT NOT NULL,
            way              TEXT,
            reason           TEXT,
            step             TEXT,
            created_at       INTEGER NOT NULL,
            due_at           INTEGER NOT NULL,
            sent_at          INTEGER,
            expires_at       INTEGER,
            csat             INTEGER,
            nps              INTEGER,
            ces              INTEGER,
            comment          TEXT,
            answered_at      INTEGER
        );
        CREATE INDEX surveys_due ON surveys(status, due_at);
        CREATE INDEX surveys_contact ON surveys(contact_id, channel_id);
        CREATE INDEX surveys_sent ON surveys(sent_at);
        CREATE INDEX conversations_contact_created ON conversations(contact_id, created_at);
        """,
    ),
    (
        34,
        """
        -- Tickets of POST /v1/events/tickets: each opens one event stream as its token.
        -- Only the ticket's SHA-256 is kept, and a row is deleted when used or expired.
        CREATE TABLE event_tickets (
            ticket_hash  TEXT PRIMARY KEY,
            token_id     TEXT NOT NULL,
            token_hash   TEXT NOT NULL,
            created_at   INTEGER NOT NULL,
            expires_at   INTEGER NOT NULL
        );
        CREATE INDEX event_tickets_expiry ON event_tickets(expires_at);
        """,
    ),
]

# Steps after which the contacts' names are folded (their name_key and words written).
FOLD_STEPS = frozenset({15})


def fold_names(conn: sqlite3.Connection) -> None:
    """Write every contact's folded name and its tails (kernel.text.name_tails)."""
    found = conn.execute(
        "SELECT id, display_name FROM contacts WHERE display_name IS NOT NULL"
    ).fetchall()
    for start in range(0, len(found), 5000):
        batch = found[start : start + 5000]
        keys = [(fold_name(name), cid) for cid, name in batch]
        conn.executemany("UPDATE contacts SET name_key = ? WHERE id = ?", keys)
        conn.executemany(
            "INSERT OR IGNORE INTO contact_names (tail, contact_id) VALUES (?, ?)",
            [(tail, cid) for cid, name in batch for tail in name_tails(name)],
        )


class SchemaTooNew(RuntimeError):
    """The database was written by a newer version of the gateway."""


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the newest version; returns the version reached."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    applied = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
    newest = MIGRATIONS[-1][0]
    if applied - {version for version, _ in MIGRATIONS}:
        raise SchemaTooNew(
            f"database schema version {max(applied)} is newer than this gateway knows "
            f"({newest}); upgrade the gateway"
        )
    # Every step not applied yet, in order: also one numbered below a step applied before
    # it (steps are independent; a database is up to date when it has all of them).
    for version, sql in MIGRATIONS:
        if version in applied:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in sql.split(";"):
                if statement.strip():
                    conn.execute(statement)
            if version in FOLD_STEPS:
                fold_names(conn)
            conn.execute("INSERT INTO schema_migrations (version) VALUES (?)", (version,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return newest
