package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sluicemesh/sluice/server/internal/registry"
)

var _ registry.Store = (*Store)(nil)

// UpsertWorkload inserts or replaces the workload registered under w.NodeID.
func (s *Store) UpsertWorkload(ctx context.Context, w registry.Workload) error {
	labels, err := json.Marshal(w.Labels)
	if err != nil {
		return fmt.Errorf("upsert workload: %w", err)
	}
	ports, err := json.Marshal(w.Ports)
	if err != nil {
		return fmt.Errorf("upsert workload: %w", err)
	}
	_, err = s.pool.Exec(ctx, `
		INSERT INTO workloads (node_id, namespace, service, name, mode, labels, address, ports,
		                       service_account, connected_at, disconnected_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL)
		ON CONFLICT (node_id) DO UPDATE SET
			namespace = EXCLUDED.namespace, service = EXCLUDED.service, name = EXCLUDED.name,
			mode = EXCLUDED.mode, labels = EXCLUDED.labels, address = EXCLUDED.address,
			ports = EXCLUDED.ports, service_account = EXCLUDED.service_account,
			connected_at = EXCLUDED.connected_at, disconnected_at = NULL`,
		w.NodeID, w.Namespace, w.Service, w.Name, w.Mode, labels, w.Address, ports,
		w.ServiceAccount, w.ConnectedAt)
	if err != nil {
		return fmt.Errorf("upsert workload %s: %w", w.NodeID, err)
	}
	return nil
}

// MarkDisconnected records when the workload's last stream closed.
func (s *Store) MarkDisconnected(ctx context.Context, nodeID string, at time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE workloads SET disconnected_at = $2 WHERE node_id = $1`, nodeID, at); err != nil {
		return fmt.Errorf("mark workload %s disconnected: %w", nodeID, err)
	}
	return nil
}

// DeleteWorkload removes the workload; removing one that is not there is not an error.
func (s *Store) DeleteWorkload(ctx context.Context, nodeID string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM workloads WHERE node_id = $1`, nodeID); err != nil {
		return fmt.Errorf("delete workload %s: %w", nodeID, err)
	}
	return nil
}

// ListWorkloads returns every stored workload, ordered by node id.
func (s *Store) ListWorkloads(ctx context.Context) ([]registry.Workload, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT node_id, namespace, service, name, mode, labels, address, ports, service_account,
		       connected_at, disconnected_at
		FROM workloads ORDER BY node_id`)
	if err != nil {
		return nil, fmt.Errorf("list workloads: %w", err)
	}
	defer rows.Close()
	var out []registry.Workload
	for rows.Next() {
		var (
			w              registry.Workload
			labels, ports  []byte
			disconnectedAt *time.Time
		)
		if err := rows.Scan(&w.NodeID, &w.Namespace, &w.Service, &w.Name, &w.Mode, &labels,
			&w.Address, &ports, &w.ServiceAccount, &w.ConnectedAt, &disconnectedAt); err != nil {
			return nil, fmt.Errorf("list workloads: %w", err)
		}
		if err := json.Unmarshal(labels, &w.Labels); err != nil {
			return nil, fmt.Errorf("list workloads: labels of %s: %w", w.NodeID, err)
		}
		if err := json.Unmarshal(ports, &w.Ports); err != nil {
			return nil, fmt.Errorf("list workloads: ports of %s: %w", w.NodeID, err)
		}
		if disconnectedAt != nil {
			w.DisconnectedAt = *disconnectedAt
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list workloads: %w", err)
	}
	return out, nil
}
