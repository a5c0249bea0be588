-- Keyward schema, version 6 (issue #20): an audit event names the person
-- it concerns when its target is something of theirs (the subject of the
-- session a session.revoke ends), so a person's audit list
-- (store.AuditQuery.Person: target or subject) includes their sessions'.
-- Events written before have none.
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS subject text NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS audit_events_subject ON audit_events (subject, seq) WHERE subject <> '';
