-- Request telemetry rolled up per series into 10-second and 1-minute buckets. A series is
-- Istio's label set of istio_requests_total and friends (see server/internal/telemetry);
-- bucket is the bucket's start. Rows are written in batches by COPY into a staging table and
-- merged: writing the same bucket twice (say, before and after a restart) adds the counts.
-- Old buckets are deleted by sluice-server according to --telemetry-retention-10s/-1m.

-- telemetry_add_buckets adds two arrays of histogram bucket counts element by element; a
-- shorter array counts as padded with zeros.
CREATE FUNCTION telemetry_add_buckets(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(coalesce(x, 0) + coalesce(y, 0) ORDER BY i), '{}')
    FROM unnest(a, b) WITH ORDINALITY AS u(x, y, i)
$$;

-- telemetry_sum_buckets sums arrays of histogram bucket counts.
CREATE AGGREGATE telemetry_sum_buckets(bigint[]) (
    SFUNC = telemetry_add_buckets,
    STYPE = bigint[],
    INITCOND = '{}',
    PARALLEL = SAFE
);

CREATE TABLE telemetry_10s (
    bucket                    timestamptz NOT NULL,
    reporter                  text NOT NULL,
    source_workload           text NOT NULL,
    source_workload_namespace text NOT NULL,
    source_version            text NOT NULL,
    destination_service       text NOT NULL,
    destination_workload      text NOT NULL,
    destination_version       text NOT NULL,
    response_code             text NOT NULL,
    grpc_response_status      text NOT NULL,
    response_flags            text NOT NULL,
    request_protocol          text NOT NULL,
    requests                  bigint NOT NULL,
    errors                    bigint NOT NULL,    -- requests that failed: 5xx, or gRPC's equivalents
    request_bytes             bigint NOT NULL,
    response_bytes            bigint NOT NULL,
    duration_count            bigint NOT NULL,
    duration_sum_ms           double precision NOT NULL,
    duration_buckets          bigint[] NOT NULL,  -- per bucket, not cumulative; Istio's bounds, +Inf last
    PRIMARY KEY (bucket, reporter, source_workload_namespace, source_workload, source_version,
                 destination_service, destination_workload, destination_version,
                 response_code, grpc_response_status, response_flags, request_protocol)
);

-- Time series of one service read this.
CREATE INDEX telemetry_10s_service_idx ON telemetry_10s (destination_service, bucket);

CREATE TABLE telemetry_1m (
    bucket                    timestamptz NOT NULL,
    reporter                  text NOT NULL,
    source_workload           text NOT NULL,
    source_workload_namespace text NOT NULL,
    source_version            text NOT NULL,
    destination_service       text NOT NULL,
    destination_workload      text NOT NULL,
    destination_version       text NOT NULL,
    response_code             text NOT NULL,
    grpc_response_status      text NOT NULL,
    response_flags            text NOT NULL,
    request_protocol          text NOT NULL,
    requests                  bigint NOT NULL,
    errors                    bigint NOT NULL,
    request_bytes             bigint NOT NULL,
    response_bytes            bigint NOT NULL,
    duration_count            bigint NOT NULL,
    duration_sum_ms           double precision NOT NULL,
    duration_buckets          bigint[] NOT NULL,
    PRIMARY KEY (bucket, reporter, source_workload_namespace, source_workload, source_version,
                 destination_service, destination_workload, destination_version,
                 response_code, grpc_response_status, response_flags, request_protocol)
);

CREATE INDEX telemetry_1m_service_idx ON telemetry_1m (destination_service, bucket);
