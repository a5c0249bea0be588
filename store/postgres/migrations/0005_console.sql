-- Keyward schema, version 5 (issue #20): the console's queries.
-- A subject says when, by whom and why it was last disabled.
ALTER TABLE subjects
    ADD COLUMN IF NOT EXISTS disabled_at     timestamptz,
    ADD COLUMN IF NOT EXISTS disabled_by     text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS disabled_reason text NOT NULL DEFAULT '';

-- Case-insensitive prefix search (store.Searcher.SearchSubjects): one
-- expression index per searchable field, in byte order (COLLATE "C") so a
-- range [prefix, successor) is an index range scan, whatever the
-- database's collation and with a generic plan.
CREATE INDEX IF NOT EXISTS subjects_search_id ON subjects ((lower(id) COLLATE "C"));
CREATE INDEX IF NOT EXISTS subjects_search_email ON subjects ((lower(email) COLLATE "C"));
CREATE INDEX IF NOT EXISTS subjects_search_name ON subjects ((lower(name) COLLATE "C"));
CREATE INDEX IF NOT EXISTS subjects_search_upstream_subject ON subjects ((lower(upstream_subject) COLLATE "C"));
CREATE INDEX IF NOT EXISTS subjects_search_upstream_id ON subjects ((lower(upstream_id) COLLATE "C"));

-- The audit log by person and by action, newest first
-- (store.Searcher.QueryAudit).
CREATE INDEX IF NOT EXISTS audit_events_target ON audit_events (target, seq);
CREATE INDEX IF NOT EXISTS audit_events_action ON audit_events (action, seq);
