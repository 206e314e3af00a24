package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicemesh/sluice/server/internal/telemetry"
)

var _ telemetry.Store = (*Store)(nil)

// rollupTables names the table of each resolution. Table names are never built from input.
var rollupTables = map[telemetry.Resolution]string{
	telemetry.Res10s: "telemetry_10s",
	telemetry.Res1m:  "telemetry_1m",
}

func rollupTable(res telemetry.Resolution) (string, error) {
	t, ok := rollupTables[res]
	if !ok {
		return "", fmt.Errorf("no telemetry table for resolution %d", res)
	}
	return t, nil
}

// rollupKey is the series' columns, the conflict target with bucket; rollupColumns all of a
// row's columns, in the order rollupValues gives them.
const rollupKey = `bucket, reporter, source_workload_namespace, source_workload, source_version,
	destination_service, destination_workload, destination_version,
	response_code, grpc_response_status, response_flags, request_protocol`

var rollupColumns = []string{
	"bucket", "reporter", "source_workload_namespace", "source_workload", "source_version",
	"destination_service", "destination_workload", "destination_version",
	"response_code", "grpc_response_status", "response_flags", "request_protocol",
	"requests", "errors", "request_bytes", "response_bytes",
	"duration_count", "duration_sum_ms", "duration_buckets", "mtls_requests",
}

func rollupValues(r *telemetry.Row) []any {
	s := &r.Series
	return []any{
		r.Bucket, s.Reporter, s.SourceNamespace, s.SourceWorkload, s.SourceVersion,
		s.DestinationService, s.DestinationWorkload, s.DestinationVersion,
		s.ResponseCode, s.GRPCStatus, s.ResponseFlags, s.Protocol,
		r.Stats.Requests, r.Stats.Errors, r.Stats.RequestBytes, r.Stats.ResponseBytes,
		r.Stats.DurationCount, r.Stats.DurationSumMs, r.Stats.Duration[:], r.Stats.MTLSRequests,
	}
}

// WriteRollups adds rows to the rollups of res in one transaction: COPY into a staging table,
// then one INSERT … ON CONFLICT that adds each row to the stored one of the same bucket and
// series. rows must not hold the same bucket and series twice.
func (s *Store) WriteRollups(ctx context.Context, res telemetry.Resolution, rows []telemetry.Row) error {
	table, err := rollupTable(res)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE telemetry_stage (LIKE telemetry_10s) ON COMMIT DROP`); err != nil {
			return fmt.Errorf("create staging table: %w", err)
		}
		n, err := tx.CopyFrom(ctx, pgx.Identifier{"telemetry_stage"}, rollupColumns,
			pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) { return rollupValues(&rows[i]), nil }))
		if err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		if n != int64(len(rows)) {
			return fmt.Errorf("copy: %d of %d rows", n, len(rows))
		}
		cols := strings.Join(rollupColumns, ", ")
		_, err = tx.Exec(ctx, `
			INSERT INTO `+table+` AS t (`+cols+`)
			SELECT `+cols+` FROM telemetry_stage
			ON CONFLICT (`+rollupKey+`) DO UPDATE SET
				requests         = t.requests + EXCLUDED.requests,
				errors           = t.errors + EXCLUDED.errors,
				request_bytes    = t.request_bytes + EXCLUDED.request_bytes,
				response_bytes   = t.response_bytes + EXCLUDED.response_bytes,
				duration_count   = t.duration_count + EXCLUDED.duration_count,
				duration_sum_ms  = t.duration_sum_ms + EXCLUDED.duration_sum_ms,
				duration_buckets = telemetry_add_buckets(t.duration_buckets, EXCLUDED.duration_buckets),
				mtls_requests    = t.mtls_requests + EXCLUDED.mtls_requests`)
		if err != nil {
			return fmt.Errorf("merge: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write %d rows to %s: %w", len(rows), table, err)
	}
	return nil
}

// ReadRollups returns the traffic of res that q selects, summed per series and step.
func (s *Store) ReadRollups(ctx context.Context, res telemetry.Resolution, q telemetry.HistoryQuery) ([]telemetry.Row, error) {
	table, err := rollupTable(res)
	if err != nil {
		return nil, err
	}
	args := []any{q.From, q.To}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	bucket := "$1::timestamptz"
	if step := int64(q.Step / time.Second); step > 0 {
		p := arg(step)
		bucket = "to_timestamp(((extract(epoch FROM bucket)::bigint / " + p + ") * " + p + ")::double precision)"
	}
	// Only the filters given are in the statement, so that the planner can use the service
	// index when there is one.
	where := []string{"bucket >= $1", "bucket < $2"}
	if q.Service != "" {
		where = append(where, "(destination_service = "+arg(q.Service)+" OR destination_service LIKE "+arg(likePrefix(q.Service))+` ESCAPE '\')`)
	}
	if q.Version != "" {
		where = append(where, "destination_version = "+arg(q.Version))
	}
	if q.SourceNamespace != "" {
		where = append(where, "source_workload_namespace = "+arg(q.SourceNamespace))
	}
	switch q.SourceWorkload {
	case "":
	case telemetry.Unknown:
		where = append(where, "source_workload IN ('', 'unknown')")
	default:
		where = append(where, "source_workload = "+arg(q.SourceWorkload))
	}
	limit := ""
	if q.Limit > 0 {
		limit = " LIMIT " + arg(q.Limit+1)
	}
	sql := `
		SELECT ` + bucket + `, reporter, source_workload_namespace, source_workload, source_version,
			destination_service, destination_workload, destination_version,
			response_code, grpc_response_status, response_flags, request_protocol,
			sum(requests)::bigint, sum(errors)::bigint, sum(request_bytes)::bigint, sum(response_bytes)::bigint,
			sum(duration_count)::bigint, sum(duration_sum_ms), telemetry_sum_buckets(duration_buckets),
			sum(mtls_requests)::bigint
		FROM ` + table + `
		WHERE ` + strings.Join(where, " AND ") + `
		GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12` + limit
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	defer rows.Close()
	var out []telemetry.Row
	var buckets []int64
	for rows.Next() {
		var r telemetry.Row
		se, st := &r.Series, &r.Stats
		if err := rows.Scan(&r.Bucket, &se.Reporter, &se.SourceNamespace, &se.SourceWorkload, &se.SourceVersion,
			&se.DestinationService, &se.DestinationWorkload, &se.DestinationVersion,
			&se.ResponseCode, &se.GRPCStatus, &se.ResponseFlags, &se.Protocol,
			&st.Requests, &st.Errors, &st.RequestBytes, &st.ResponseBytes,
			&st.DurationCount, &st.DurationSumMs, &buckets, &st.MTLSRequests); err != nil {
			return nil, fmt.Errorf("read %s: %w", table, err)
		}
		copy(st.Duration[:], buckets)
		r.Bucket = r.Bucket.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	if q.Limit > 0 && len(out) > q.Limit {
		return nil, telemetry.ErrTooManyRows
	}
	return out, nil
}

// likePrefix is the LIKE pattern of the hosts that service names as a prefix: the service
// followed by a dot and anything.
func likePrefix(service string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(service) + ".%"
}

// DeleteRollupsBefore deletes the buckets of res that start before before.
func (s *Store) DeleteRollupsBefore(ctx context.Context, res telemetry.Resolution, before time.Time) (int64, error) {
	table, err := rollupTable(res)
	if err != nil {
		return 0, err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM `+table+` WHERE bucket < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("delete from %s before %s: %w", table, before.Format(time.RFC3339), err)
	}
	return tag.RowsAffected(), nil
}
