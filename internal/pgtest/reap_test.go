package pgtest

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluicemesh/sluice/internal/pgembed"
)

func TestReapAbandoned(t *testing.T) {
	binDir, err := pgembed.FindBinaries()
	if err != nil {
		t.Fatal(err)
	}
	// A cluster whose test binary died: its owner-pid names a process that has exited.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", dirPattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = pgembed.Kill(context.Background(), pgembed.Options{DataDir: dir})
		_ = os.RemoveAll(dir)
	})
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	pg, err := pgembed.Start(t.Context(), pgembed.Options{DataDir: dir, BinDir: binDir})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(dead.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	// And one whose test binary still runs: this one.
	mine, err := os.MkdirTemp("", dirPattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(mine) })
	if err := os.WriteFile(filepath.Join(mine, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}

	reapAbandoned()

	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("abandoned cluster directory %s: %v, want it removed", dir, err)
	}
	if conn, err := pgx.Connect(t.Context(), pg.URL("postgres")); err == nil {
		_ = conn.Close(t.Context())
		t.Error("the abandoned cluster still accepts connections")
	}
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("live test binary's directory %s: %v, want it kept", mine, err)
	}
}
