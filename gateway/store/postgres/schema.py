"""Versioned schema migrations for the PostgreSQL backend. Append; never edit a released
step. Migrations run at start (and by `omnigw migrate`) under an advisory lock, so
replicas starting together migrate once."""

from __future__ import annotations

from typing import Any

from kernel.text import fold_name, name_tails

# Taken while migrating (pg_advisory_lock): a number of our own, "omnigw" in ASCII.
MIGRATION_LOCK = 0x6F6D6E6967770001

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE contacts (
            id              text PRIMARY KEY,
            display_name    text,
            phone           text,
            email           text,
            created_at      timestamptz NOT NULL,
            phone_verified  boolean NOT NULL DEFAULT false,
            email_verified  boolean NOT NULL DEFAULT false,
            merged_into     text REFERENCES contacts(id),
            attributes      jsonb NOT NULL DEFAULT '{}',
            last_agent_id   text,
            last_served_at  timestamptz
        );
        CREATE INDEX contacts_merged ON contacts (merged_into) WHERE merged_into IS NOT NULL;
        CREATE INDEX contacts_verified_email ON contacts (email)
            WHERE email_verified AND merged_into IS NULL;
        CREATE INDEX contacts_verified_phone ON contacts (phone)
            WHERE phone_verified AND merged_into IS NULL;

        CREATE TABLE identities (
            channel_id          text NOT NULL,
            external_id         text NOT NULL,
            channel_type        text NOT NULL,
            contact_id          text NOT NULL REFERENCES contacts(id),
            original_contact_id text NOT NULL REFERENCES contacts(id),
            display_name        text,
            avatar_url          text,
            created_at          timestamptz NOT NULL,
            PRIMARY KEY (channel_id, external_id)
        );
        CREATE INDEX identities_contact ON identities (contact_id);

        CREATE TABLE agents (
            id                  text PRIMARY KEY,
            name                text,
            skills              jsonb NOT NULL DEFAULT '{}',
            languages           jsonb NOT NULL DEFAULT '[]',
            capacity            jsonb NOT NULL DEFAULT '{}',
            presence            text NOT NULL DEFAULT 'offline',
            presence_changed_at timestamptz,
            last_assigned_at    timestamptz NOT NULL DEFAULT 'epoch',
            created_at          timestamptz NOT NULL,
            updated_at          timestamptz NOT NULL
        );

        CREATE TABLE conversations (
            id                 text PRIMARY KEY,
            contact_id         text NOT NULL REFERENCES contacts(id),
            channel_id         text NOT NULL,
            channel_type       text NOT NULL,
            recipient_id       text NOT NULL,
            status             text NOT NULL,
            assignee_id        text,
            priority           integer NOT NULL DEFAULT 0,
            skills             jsonb NOT NULL DEFAULT '[]',
            language           text,
            subject            text,
            created_at         timestamptz NOT NULL,
            first_response_at  timestamptz,
            resolved_at        timestamptz,
            last_message_at    timestamptz,
            last_inbound_at    timestamptz,
            queued_at          timestamptz,
            queue_announced    boolean NOT NULL DEFAULT false,
            excluded_agents    jsonb NOT NULL DEFAULT '[]',
            required_skills    jsonb NOT NULL DEFAULT '{}',
            routing_rule       text,
            assigned_at        timestamptz,
            awaiting_since     timestamptz
        );
        CREATE UNIQUE INDEX conversations_one_open
            ON conversations (contact_id, channel_id) WHERE status <> 'resolved';
        CREATE INDEX conversations_contact ON conversations (contact_id, id);
        CREATE INDEX conversations_queue ON conversations (priority DESC, queued_at, id)
            WHERE status = 'queued';
        CREATE INDEX conversations_assignee ON conversations (assignee_id, channel_type)
            WHERE status = 'assigned';
        CREATE INDEX conversations_status ON conversations (status, id);
        CREATE INDEX conversations_channel ON conversations (channel_id, id);
        CREATE INDEX conversations_recipient ON conversations (channel_id, recipient_id);
        CREATE INDEX conversations_awaiting ON conversations (awaiting_since)
            WHERE status = 'assigned' AND awaiting_since IS NOT NULL;
        CREATE INDEX conversations_created ON conversations (created_at);

        CREATE TABLE messages (
            id               text PRIMARY KEY,
            conversation_id  text NOT NULL REFERENCES conversations(id),
            contact_id       text NOT NULL,
            channel_id       text NOT NULL,
            direction        text NOT NULL,
            author_type      text NOT NULL,
            author_id        text,
            external_id      text,
            parts            jsonb NOT NULL,
            reply_to         text,
            created_at       timestamptz NOT NULL,
            status           text NOT NULL,
            error            jsonb,
            idempotency_key  text,
            request_hash     text,
            attempts         integer NOT NULL DEFAULT 0,
            next_attempt_at  timestamptz,
            reactions        jsonb,
            sent_at          timestamptz,
            -- a replica sending it holds it until then (outbound work is shared)
            lease_owner      text,
            lease_until      timestamptz
        );
        CREATE UNIQUE INDEX messages_external ON messages (channel_id, external_id)
            WHERE external_id IS NOT NULL;
        CREATE UNIQUE INDEX messages_idempotency ON messages (conversation_id, idempotency_key)
            WHERE idempotency_key IS NOT NULL;
        CREATE INDEX messages_conversation ON messages (conversation_id, id);
        CREATE INDEX messages_contact ON messages (contact_id, id);
        CREATE INDEX messages_pending ON messages (next_attempt_at, id) WHERE status = 'pending';
        CREATE INDEX messages_leased ON messages (lease_owner)
            WHERE status = 'pending' AND lease_owner IS NOT NULL;

        -- The event log. seq is handed out by appending under the one row of event_head
        -- (held until commit), so seqs commit in order and without gaps.
        CREATE TABLE event_head (
            id    integer PRIMARY KEY CHECK (id = 1),
            last  bigint NOT NULL
        );
        INSERT INTO event_head VALUES (1, 0);
        CREATE TABLE events (
            seq              bigint PRIMARY KEY,
            type             text NOT NULL,
            created_at       timestamptz NOT NULL,
            conversation_id  text,
            data             json NOT NULL
        );
        CREATE INDEX events_conversation ON events (conversation_id, seq)
            WHERE conversation_id IS NOT NULL;
        CREATE INDEX events_created ON events (created_at);

        CREATE TABLE routing_decisions (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            conversation_id  text NOT NULL,
            created_at       timestamptz NOT NULL,
            agent_id         text,
            explanation      json NOT NULL
        );
        CREATE INDEX routing_decisions_conversation ON routing_decisions (conversation_id, id);

        -- Routing's version: every unit that changes agents or assignments moves it, so a
        -- replica knows when the agent index it keeps is no longer the truth.
        CREATE TABLE routing_state (
            id       integer PRIMARY KEY CHECK (id = 1),
            version  bigint NOT NULL
        );
        INSERT INTO routing_state VALUES (1, 0);

        CREATE TABLE api_tokens (
            id            text PRIMARY KEY,
            name          text NOT NULL,
            token_hash    text NOT NULL UNIQUE,
            scopes        jsonb NOT NULL,
            agent_id      text,
            created_at    timestamptz NOT NULL,
            last_used_at  timestamptz,
            revoked_at    timestamptz
        );

        CREATE TABLE raw_events (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            channel_id  text NOT NULL,
            kind        text NOT NULL,
            reason      text NOT NULL,
            payload     text NOT NULL,
            created_at  timestamptz NOT NULL,
            digest      text NOT NULL,
            UNIQUE (channel_id, digest)
        );

        CREATE TABLE channel_state (
            channel_id  text NOT NULL,
            key         text NOT NULL,
            value       jsonb NOT NULL,
            updated_at  timestamptz NOT NULL,
            PRIMARY KEY (channel_id, key)
        );

        CREATE TABLE attachments (
            id          text PRIMARY KEY,
            channel_id  text NOT NULL,
            name        text,
            mime        text NOT NULL,
            size        bigint NOT NULL,
            sha256      text NOT NULL,
            path        text NOT NULL,
            created_at  timestamptz NOT NULL
        );
        -- File contents, so that every replica serves every file.
        CREATE TABLE attachment_data (
            id    text PRIMARY KEY REFERENCES attachments(id) ON DELETE CASCADE,
            data  bytea NOT NULL
        );

        CREATE TABLE webhook_endpoints (
            id               text PRIMARY KEY,
            url              text NOT NULL,
            description      text,
            events           jsonb NOT NULL DEFAULT '["*"]',
            source           text NOT NULL DEFAULT 'api',
            secrets          text NOT NULL,
            created_at       timestamptz NOT NULL,
            updated_at       timestamptz NOT NULL,
            disabled_at      timestamptz,
            disabled_reason  text,
            cursor           bigint NOT NULL DEFAULT 0,
            failing_since    timestamptz,
            last_success_at  timestamptz
        );
        CREATE TABLE webhook_deliveries (
            endpoint_id      text NOT NULL,
            event_seq        bigint NOT NULL,
            conversation_id  text,
            status           text NOT NULL,
            attempts         integer NOT NULL DEFAULT 0,
            next_attempt_at  timestamptz,
            last_status_code integer,
            last_error       text,
            updated_at       timestamptz NOT NULL,
            PRIMARY KEY (endpoint_id, event_seq)
        );
        CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, next_attempt_at)
            WHERE status = 'pending';
        CREATE TABLE webhook_attempts (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            endpoint_id      text NOT NULL,
            event_seq        bigint NOT NULL,
            attempt          integer NOT NULL,
            at               timestamptz NOT NULL,
            status_code      integer,
            latency_ms       double precision,
            outcome          text NOT NULL,
            error            text,
            response         text
        );
        CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id);

        CREATE TABLE api_channels (
            id          text PRIMARY KEY,
            type        text NOT NULL,
            sealed      text NOT NULL,
            created_at  timestamptz NOT NULL,
            updated_at  timestamptz NOT NULL
        );

        -- Work one replica at a time does (a mailbox's polling, an endpoint's deliveries,
        -- dispatching the queue): held until `until`, renewed while the holder lives.
        CREATE TABLE leases (
            name    text PRIMARY KEY,
            owner   text NOT NULL,
            until   timestamptz NOT NULL,
            -- another process asked for it (an admin change made there): hand it over
            wanted  boolean NOT NULL DEFAULT false
        );
        """,
    ),
    (
        2,
        """
        -- The channel identity a message came from or was written to (its peer), so
        -- that a visitor's history is its own whatever contacts were merged. Earlier
        -- messages get the conversation's recipient, or, for a webchat visitor's own,
        -- the visitor its external id names ("<visitor>:<client id>").
        ALTER TABLE messages ADD COLUMN peer_id text;
        UPDATE messages m SET peer_id = CASE
                WHEN c.channel_type = 'webchat' AND m.direction = 'inbound'
                    AND strpos(COALESCE(m.external_id, ''), ':') > 1
                THEN split_part(m.external_id, ':', 1)
                ELSE c.recipient_id
            END
            FROM conversations c WHERE c.id = m.conversation_id;
        CREATE INDEX messages_peer ON messages (channel_id, peer_id, id);
        """,
    ),
    (
        3,
        """
        -- Structured data beside a message's text (a quick reply's payload, a choice, an
        -- email's Cc): a JSON object, NULL when there is none.
        ALTER TABLE messages ADD COLUMN metadata jsonb;
        """,
    ),
    (
        4,
        """
        -- Developer payloads stored as text by earlier versions (a Messenger quick reply's
        -- or button's payload as a second text part "[quick reply payload] X" or
        -- "[postback payload] X") move into the message's metadata: the customer's words
        -- stay its only text.
        UPDATE messages m SET
            metadata = COALESCE(m.metadata, '{}'::jsonb) || (
                SELECT jsonb_build_object(
                    'payload', CASE
                        WHEN p.value->>'text' LIKE '[quick reply payload] %'
                        THEN substr(p.value->>'text', 23)
                        ELSE substr(p.value->>'text', 20) END,
                    'payload_from', CASE
                        WHEN p.value->>'text' LIKE '[quick reply payload] %'
                        THEN 'quick_reply' ELSE 'postback' END)
                FROM jsonb_array_elements(m.parts) WITH ORDINALITY p(value, n)
                WHERE p.value->>'type' = 'text'
                    AND (p.value->>'text' LIKE '[quick reply payload] %'
                        OR p.value->>'text' LIKE '[postback payload] %')
                ORDER BY p.n LIMIT 1),
            parts = (
                SELECT jsonb_agg(p.value ORDER BY p.n)
                FROM jsonb_array_elements(m.parts) WITH ORDINALITY p(value, n)
                WHERE NOT (p.value->>'type' = 'text'
                    AND (p.value->>'text' LIKE '[quick reply payload] %'
                        OR p.value->>'text' LIKE '[postback payload] %')))
        WHERE m.direction = 'inbound'
            AND m.channel_id IN (SELECT DISTINCT channel_id FROM conversations
                                 WHERE channel_type = 'facebook')
            AND EXISTS (
                SELECT 1 FROM jsonb_array_elements(m.parts) p(value)
                WHERE p.value->>'type' = 'text'
                    AND (p.value->>'text' LIKE '[quick reply payload] %'
                        OR p.value->>'text' LIKE '[postback payload] %'))
            AND EXISTS (
                SELECT 1 FROM jsonb_array_elements(m.parts) p(value)
                WHERE NOT (p.value->>'type' = 'text'
                    AND (p.value->>'text' LIKE '[quick reply payload] %'
                        OR p.value->>'text' LIKE '[postback payload] %')));
        """,
    ),
    (
        5,
        """
        -- Canned replies: rows with the same name are one reply's language variants.
        CREATE TABLE templates (
            id          text PRIMARY KEY,
            name        text NOT NULL,
            language    text NOT NULL,
            body        jsonb NOT NULL,
            created_at  timestamptz NOT NULL,
            updated_at  timestamptz NOT NULL
        );
        CREATE UNIQUE INDEX templates_name_language ON templates (name, language);
        """,
    ),
    (
        6,
        """
        -- A contact erased at the person's request (its rows stay, anonymised, so that
        -- figures add up), and what the retention sweep looks for by age.
        ALTER TABLE contacts ADD COLUMN erased_at timestamptz;
        CREATE INDEX raw_events_created ON raw_events (created_at);
        CREATE INDEX webhook_attempts_at ON webhook_attempts (at);
        CREATE INDEX attachments_created ON attachments (created_at);
        CREATE INDEX conversations_resolved ON conversations (resolved_at)
            WHERE status = 'resolved';
        """,
    ),
    (
        7,
        """
        -- Reply windows: the closing time last announced (conversation.window_closing
        -- fires once per window), and the Idempotency-Key of the request that started a
        -- conversation from the business side (POST /v1/conversations).
        ALTER TABLE conversations ADD COLUMN window_warned_at timestamptz;
        ALTER TABLE conversations ADD COLUMN start_key text;
        CREATE UNIQUE INDEX conversations_start_key ON conversations (start_key)
            WHERE start_key IS NOT NULL;
        CREATE INDEX conversations_last_inbound ON conversations (last_inbound_at)
            WHERE status <> 'resolved';
        """,
    ),
    (
        8,
        """
        -- Finding contacts (gateway/store/contact_search.py): the folded name, its tails
        -- (compared byte by byte, so that a prefix is one range of the index), and the
        -- e-mail, phone and identity indexes a search reads in order. The names already
        -- stored are folded after this step (FOLD_STEPS).
        ALTER TABLE contacts ADD COLUMN name_key text NOT NULL DEFAULT '';
        CREATE TABLE contact_names (
            tail        text COLLATE "C" NOT NULL,
            contact_id  text NOT NULL REFERENCES contacts(id),
            PRIMARY KEY (tail, contact_id)
        );
        CREATE INDEX contacts_email ON contacts (email, id)
            WHERE merged_into IS NULL AND email IS NOT NULL;
        CREATE INDEX contacts_phone ON contacts (phone, id)
            WHERE merged_into IS NULL AND phone IS NOT NULL;
        CREATE INDEX identities_external ON identities (external_id);
        CREATE INDEX identities_channel ON identities (channel_id, contact_id);

        -- Two contacts separated by hand (an unmerge): nothing links them by itself again.
        -- One row per pair, the smaller id first.
        CREATE TABLE contacts_apart (
            low         text NOT NULL REFERENCES contacts(id),
            high        text NOT NULL REFERENCES contacts(id),
            created_at  timestamptz NOT NULL,
            PRIMARY KEY (low, high)
        );
        """,
    ),
    (
        9,
        """
        -- On email each thread is its own conversation, so a contact may have several
        -- open there, while chat channels keep one open conversation per contact and channel.
        DROP INDEX conversations_one_open;
        CREATE UNIQUE INDEX conversations_one_open ON conversations (contact_id, channel_id)
            WHERE status <> 'resolved' AND channel_type <> 'email';
        CREATE INDEX conversations_open ON conversations (contact_id, channel_id, id)
            WHERE status <> 'resolved';
        """,
    ),
    (
        10,
        """
        -- Messages whose provider files (expiring CDN URLs) are still to be fetched into
        -- the attachment storage: written with the message, removed when every file is
        -- kept or given up. next_at is also pushed ahead while a process fetches.
        CREATE TABLE media_downloads (
            message_id  text PRIMARY KEY,
            channel_id  text NOT NULL,
            attempts    integer NOT NULL DEFAULT 0,
            next_at     timestamptz NOT NULL,
            created_at  timestamptz NOT NULL
        );
        CREATE INDEX media_downloads_due ON media_downloads (next_at);
        """,
    ),
    (
        30,
        """
        -- Bots first: the bot holding a conversation (status 'bot'), and the bot a token
        -- of scope 'bot' speaks for.
        ALTER TABLE conversations ADD COLUMN bot_id text;
        CREATE INDEX conversations_bot ON conversations (bot_id, awaiting_since)
            WHERE status = 'bot';
        ALTER TABLE api_tokens ADD COLUMN bot_id text;
        """,
    ),
    (
        31,
        """
        -- A conversation's SLA clock (routing.sla, as JSON) and its off-hours reply.
        CREATE TABLE conversation_clocks (
            conversation_id  text PRIMARY KEY,
            channel_id       text NOT NULL,
            created_at       timestamptz NOT NULL,
            policy           text,
            sla              jsonb,
            next_check       timestamptz,
            off_hours_until  timestamptz
        );
        CREATE INDEX conversation_clocks_next_check ON conversation_clocks (next_check)
            WHERE next_check IS NOT NULL;
        CREATE INDEX conversation_clocks_created ON conversation_clocks (created_at);
        """,
    ),
    (
        33,
        """
        -- Satisfaction surveys: one per resolved conversation, sent by a sweep when due.
        CREATE TABLE surveys (
            id               text PRIMARY KEY,
            conversation_id  text NOT NULL UNIQUE,
            contact_id       text NOT NULL,
            channel_id       text NOT NULL,
            channel_type     text NOT NULL,
            agent_id         text,
            language         text,
            questions        text NOT NULL,
            status           text NOT NULL,
            way              text,
            reason           text,
            step             text,
            created_at       timestamptz NOT NULL,
            due_at           timestamptz NOT NULL,
            sent_at          timestamptz,
            expires_at       timestamptz,
            csat             smallint,
            nps              smallint,
            ces              smallint,
            comment          text,
            answered_at      timestamptz
        );
        CREATE INDEX surveys_due ON surveys (due_at) WHERE status = 'scheduled';
        CREATE INDEX surveys_contact ON surveys (contact_id, channel_id);
        CREATE INDEX surveys_sent ON surveys (sent_at);
        CREATE INDEX conversations_contact_created ON conversations (contact_id, created_at);
        """,
    ),
    (
        34,
        """
        -- Tickets of POST /v1/events/tickets: each opens one event stream as its token.
        -- Only the ticket's SHA-256 is kept, and a row is deleted when used or expired.
        CREATE TABLE event_tickets (
            ticket_hash  text PRIMARY KEY,
            token_id     text NOT NULL,
            token_hash   text NOT NULL,
            created_at   timestamptz NOT NULL,
            expires_at   timestamptz NOT NULL
        );
        CREATE INDEX event_tickets_expiry ON event_tickets (expires_at);
        """,
    ),
]

# Steps after which the contacts' names are folded (their name_key and words written).
FOLD_STEPS = frozenset({8})


async def fold_names(conn: Any) -> None:
    """Write every contact's folded name and its tails (kernel.text.name_tails)."""
    found = await conn.fetch("SELECT id, display_name FROM contacts WHERE display_name IS NOT NULL")
    for start in range(0, len(found), 5000):
        batch = found[start : start + 5000]
        await conn.executemany(
            "UPDATE contacts SET name_key = $1 WHERE id = $2",
            [(fold_name(name), cid) for cid, name in batch],
        )
        await conn.executemany(
            "INSERT INTO contact_names (tail, contact_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [(tail, cid) for cid, name in batch for tail in name_tails(name)],
        )


class SchemaTooNew(RuntimeError):
    """The database was written by a newer version of the gateway."""


async def migrate(conn: Any) -> int:
    """Bring the schema to the newest version; returns the version reached."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        newest = MIGRATIONS[-1][0]
        if applied - {version for version, _ in MIGRATIONS}:
            raise SchemaTooNew(
                f"database schema version {max(applied)} is newer than this gateway knows "
                f"({newest}); upgrade the gateway"
            )
        # Every step not applied yet, in order (see the SQLite backend's migrate).
        for version, sql in MIGRATIONS:
            if version in applied:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                if version in FOLD_STEPS:
                    await fold_names(conn)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
        return newest
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
