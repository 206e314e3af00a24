DROP TABLE telemetry_1m;
DROP TABLE telemetry_10s;
DROP AGGREGATE telemetry_sum_buckets(bigint[]);
DROP FUNCTION telemetry_add_buckets(bigint[], bigint[]);
