DROP TABLE IF EXISTS workloads;
DROP SEQUENCE IF EXISTS mesh_version_seq;
