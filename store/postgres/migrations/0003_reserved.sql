-- Number 3 is assigned to the SCIM change (scim). This no-op keeps the
-- version chain without a gap on branches that do not have it yet; it is
-- replaced by that migration when the branches meet.
SELECT 1;
