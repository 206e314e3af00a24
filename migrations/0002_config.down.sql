DROP TABLE IF EXISTS resources;
DROP TABLE IF EXISTS revision_changes;
DROP TABLE IF EXISTS revisions;
DROP TABLE IF EXISTS mesh_revision;
