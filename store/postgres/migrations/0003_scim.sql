-- SCIM 2.0 resources (Users and Groups) provisioned by identity providers,
-- per upstream. name_key is the name lower-cased by keyward (Go's
-- strings.ToLower), so that both backends compare names alike.
CREATE TABLE scim_resources (
    upstream    text COLLATE "C" NOT NULL,
    type        text COLLATE "C" NOT NULL,
    id          text COLLATE "C" NOT NULL,
    external_id text NOT NULL,
    name        text NOT NULL,
    name_key    text COLLATE "C" NOT NULL,
    subject     text COLLATE "C" NOT NULL,
    active      boolean NOT NULL,
    members     text[],
    attributes  bytea,
    version     bigint NOT NULL,
    created_at  timestamptz,
    updated_at  timestamptz,
    PRIMARY KEY (upstream, type, id)
);
CREATE UNIQUE INDEX scim_resources_name ON scim_resources (upstream, type, name_key);
-- A person is linked to one User per upstream.
CREATE UNIQUE INDEX scim_resources_subject ON scim_resources (upstream, type, subject) WHERE subject <> '';
