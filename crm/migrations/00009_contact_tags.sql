-- Contact tags (customer/tags.go): a set of labels per contact — interests,
-- product lines, events attended — that broadcast segments and the funnel
-- report select on. Stored as a sorted, distinct text[] (crm.Store.SetTags
-- keeps it so), empty rather than NULL so that "has tag X" is a plain
-- containment test (tags @> ARRAY['x']).
--
-- The CHECK is customer.MaxTagsPerContact, so that no writer (an ad-hoc
-- UPDATE included) can store more; TestSchemaMatchesTheTagLimit fails when
-- the two drift apart. The GIN index answers containment, so a segment of
-- a rare tag reads the few tagged contacts instead of scanning every
-- contact; it indexes the whole table (not only the marketing audience)
-- because the funnel report selects by tag too.
--
-- The column is added empty, so on an existing table the CHECK and the
-- index are cheap to build (one pass over contacts, every array empty).

-- +goose Up
ALTER TABLE contacts ADD COLUMN tags text[] NOT NULL DEFAULT '{}'
    CONSTRAINT contacts_tags_max CHECK (cardinality(tags) <= 100);
CREATE INDEX contacts_tags_gin ON contacts USING gin (tags);

-- +goose Down
DROP INDEX contacts_tags_gin;
ALTER TABLE contacts DROP COLUMN tags;
