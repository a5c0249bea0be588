-- Keyward schema, version 1. Applied by keyward migrate (or Open with
-- Options.Migrate) inside one transaction, under an advisory lock.
--
-- Key and index columns are text COLLATE "C": byte order, like the bbolt
-- backend, whatever the database's default collation. Times are timestamptz;
-- NULL stands for the zero time.

CREATE TABLE login_attempts (
    id              text COLLATE "C" PRIMARY KEY,
    client_id       text NOT NULL,
    authorize_form  jsonb,
    upstream_id     text NOT NULL,
    state           text COLLATE "C" NOT NULL,
    nonce           text NOT NULL,
    pkce_verifier   text NOT NULL,
    browser_binding text NOT NULL,
    created_at      timestamptz,
    expires_at      timestamptz
);
-- State is unique among attempts that have one.
CREATE UNIQUE INDEX login_attempts_state ON login_attempts (state) WHERE state <> '';
CREATE INDEX login_attempts_expires_at ON login_attempts (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE sessions (
    id                     text COLLATE "C" PRIMARY KEY,
    subject                text COLLATE "C" NOT NULL,
    upstream_id            text NOT NULL,
    upstream_subject       text NOT NULL,
    identity               jsonb NOT NULL,
    auth_time              timestamptz,
    created_at             timestamptz,
    last_seen_at           timestamptz,
    expires_at             timestamptz,
    upstream_refresh_token bytea,
    upstream_checked_at    timestamptz
);
CREATE INDEX sessions_subject ON sessions (subject, created_at, id);
CREATE INDEX sessions_created_at ON sessions (created_at, id);
CREATE INDEX sessions_expires_at ON sessions (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE subjects (
    id               text COLLATE "C" PRIMARY KEY,
    upstream_id      text NOT NULL,
    upstream_subject text NOT NULL,
    email            text NOT NULL,
    name             text NOT NULL,
    disabled         boolean NOT NULL,
    not_before       timestamptz,
    created_at       timestamptz,
    updated_at       timestamptz,
    last_login_at    timestamptz
);

-- fosite's records, keyed by (kind, signature); data is the broker's
-- serialization of the request, opaque to the store.
CREATE TABLE grants (
    kind             text COLLATE "C" NOT NULL,
    signature        text COLLATE "C" NOT NULL,
    request_id       text COLLATE "C" NOT NULL,
    client_id        text NOT NULL,
    subject          text COLLATE "C" NOT NULL,
    session_id       text COLLATE "C" NOT NULL,
    active           boolean NOT NULL,
    access_signature text NOT NULL,
    rotated_at       timestamptz,
    grace_used_at    timestamptz,
    requested_at     timestamptz,
    expires_at       timestamptz,
    data             bytea,
    PRIMARY KEY (kind, signature)
);
CREATE INDEX grants_request_id ON grants (request_id);
CREATE INDEX grants_subject ON grants (subject) WHERE subject <> '';
CREATE INDEX grants_session_id ON grants (session_id) WHERE session_id <> '';
CREATE INDEX grants_expires_at ON grants (expires_at) WHERE expires_at IS NOT NULL;

-- The key set is one row, present from the start with version 0 (no key
-- set stored yet), so that every UpdateKeySet locks an existing row.
CREATE TABLE key_set (
    id            integer PRIMARY KEY CHECK (id = 1),
    version       bigint NOT NULL,
    keys          jsonb,
    next_rotation timestamptz,
    updated_at    timestamptz
);
INSERT INTO key_set (id, version) VALUES (1, 0);

-- The highest Seq ever assigned per feed. Appends increment it in their own
-- transaction: the row lock orders appenders, so Seqs are gap-free and
-- commit in order, and collecting entries never lowers it.
CREATE TABLE seq_counters (
    name text COLLATE "C" PRIMARY KEY,
    seq  bigint NOT NULL
);
INSERT INTO seq_counters (name, seq) VALUES ('revocations', 0), ('audit_events', 0);

CREATE TABLE revocations (
    seq        bigint PRIMARY KEY,
    kind       text NOT NULL,
    subject    text NOT NULL,
    session_id text NOT NULL,
    not_before timestamptz,
    expires_at timestamptz,
    created_at timestamptz
);
CREATE INDEX revocations_expires_at ON revocations (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE audit_events (
    seq    bigint PRIMARY KEY,
    at     timestamptz,
    actor  text NOT NULL,
    action text NOT NULL,
    target text NOT NULL,
    reason text NOT NULL
);
