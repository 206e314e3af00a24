// Package migrations holds the control plane's PostgreSQL schema as golang-migrate SQL files,
// embedded so that sluice-server can apply them at start and through `sluice-server migrate`.
package migrations

import "embed"

// FS holds every NNNN_name.up.sql and NNNN_name.down.sql file of this folder.
//
//go:embed *.sql
var FS embed.FS
