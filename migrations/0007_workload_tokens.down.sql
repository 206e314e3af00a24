DROP TABLE ca_root;
DROP TABLE workload_tokens;
