package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/fstest"
	"time"

	"github.com/sluicemesh/sluice/internal/pgtest"
	"github.com/sluicemesh/sluice/server/internal/auth"
	"github.com/sluicemesh/sluice/server/internal/changes"
	"github.com/sluicemesh/sluice/server/internal/experiments"
	"github.com/sluicemesh/sluice/server/internal/store"
	"github.com/sluicemesh/sluice/server/internal/xds"
)

// haltRecorder stands in for the translator: it keeps the halted runs it is given.
type haltRecorder struct{ halted []xds.RunKey }

func (h *haltRecorder) SetHaltedExperiments(runs []xds.RunKey) { h.halted = runs }
func (h *haltRecorder) Kick()                                  {}

// newExperimentEnv is newEnv with a real experiment scheduler (not running: tests call
// Reconcile) behind the API.
func newExperimentEnv(t *testing.T) (*env, *experiments.Scheduler, *haltRecorder) {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(logWriter{t}, nil))
	url := pgtest.New(t, migrated)
	st, err := store.Open(ctx, url, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	clk := &testClock{t: time.Now()}
	svc, err := auth.NewService(st, auth.Options{Params: fastParams, Now: clk.Now, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Bootstrap(ctx, adminPassword, io.Discard); err != nil {
		t.Fatal(err)
	}
	rec := &haltRecorder{}
	sched, err := experiments.New(experiments.Options{Runs: st, Config: st, Overlay: rec, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	h := NewServer(Deps{
		Log: log, DB: st, XDSServing: func() bool { return true }, Proxies: noProxies{},
		Console: fstest.MapFS{"index.html": {Data: []byte("<!doctype html>")}},
		Auth:    svc, Audit: st, Config: st, Changes: changes.New(st), Experiments: sched,
	})
	e := &env{t: t, st: st, dbURL: url, clock: clk, api: h, srv: httptest.NewServer(h)}
	t.Cleanup(e.srv.Close)
	return e, sched, rec
}

const chaosYAML = `apiVersion: sluice.dev/v1alpha1
kind: FaultExperiment
metadata: {name: chaos, namespace: default}
spec:
  host: ratings
  abort: {httpStatus: 503}
  duration: 1h
`

type experimentView struct {
	Experiment *experiments.Status   `json:"experiment"`
	Runs       []store.ExperimentRun `json:"runs"`
}

func TestExperimentsAPI(t *testing.T) {
	t.Parallel()
	e, sched, rec := newExperimentEnv(t)
	admin := e.admin()
	e.addUser(admin, "vera", "viewer password 1", auth.RoleViewer)
	viewer := e.signedIn("vera", "viewer password 1")
	admin.mustApply(chaosYAML)

	// Listed with a state before the scheduler has recorded a run: the clock decides.
	var list struct {
		Items   []experiments.Status  `json:"items"`
		History []store.ExperimentRun `json:"history"`
	}
	wantStatus(t, "list", viewer.do("GET", "/api/v1/experiments", nil, &list), http.StatusOK, "")
	if len(list.Items) != 1 || list.Items[0].State != store.ExperimentRunning || list.Items[0].Host != "ratings.default.svc.cluster.local" || list.History == nil {
		t.Fatalf("list %+v", list)
	}
	if _, err := sched.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	var one experimentView
	wantStatus(t, "get", viewer.do("GET", "/api/v1/namespaces/default/experiments/chaos", nil, &one), http.StatusOK, "")
	if one.Experiment == nil || one.Experiment.State != store.ExperimentRunning || len(one.Runs) != 1 || one.Runs[0].StartedAt == nil {
		t.Fatalf("get %+v", one)
	}
	wantStatus(t, "get unknown", viewer.do("GET", "/api/v1/namespaces/default/experiments/nope", nil, nil), http.StatusNotFound, "FaultExperiment default/nope")

	// The resource routes, whose {kind} sits where "experiments" does, still answer.
	wantStatus(t, "resource", viewer.do("GET", "/api/v1/namespaces/default/faultexperiments/chaos", nil, nil), http.StatusOK, "")
	wantStatus(t, "resource history", viewer.do("GET", "/api/v1/namespaces/default/faultexperiments/chaos/history", nil, nil), http.StatusOK, "")
	wantStatus(t, "kinds list", viewer.do("GET", "/api/v1/faultexperiments", nil, nil), http.StatusOK, "")
	wantStatus(t, "experiments is not a kind", viewer.do("GET", "/api/v1/namespaces/default/experiments", nil, nil), http.StatusNotFound, "not a resource kind")

	wantStatus(t, "stop as viewer", viewer.do("POST", "/api/v1/namespaces/default/experiments/chaos/stop", nil, nil), http.StatusForbidden, "")
	var stopped struct {
		Run store.ExperimentRun `json:"run"`
	}
	wantStatus(t, "stop", admin.do("POST", "/api/v1/namespaces/default/experiments/chaos/stop", nil, &stopped), http.StatusOK, "")
	if stopped.Run.State != store.ExperimentStopped || stopped.Run.Reason != "stopped by admin" {
		t.Fatalf("stopped run %+v", stopped.Run)
	}
	wantStatus(t, "stop again", admin.do("POST", "/api/v1/namespaces/default/experiments/chaos/stop", nil, nil), http.StatusConflict, "nothing to stop")
	wantStatus(t, "stop unknown", admin.do("POST", "/api/v1/namespaces/default/experiments/nope/stop", nil, nil), http.StatusNotFound, "")
	if _, err := sched.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(rec.halted) != 1 {
		t.Errorf("halted %v, want the stopped run", rec.halted)
	}

	entries, err := e.st.ListAudit(context.Background(), store.AuditFilter{Action: "experiment.stop"})
	if err != nil || len(entries) != 1 || entries[0].Actor != "admin" || entries[0].Target != "FaultExperiment/default/chaos" {
		t.Fatalf("audit %+v err %v", entries, err)
	}
	wantStatus(t, "list after stop", viewer.do("GET", "/api/v1/experiments", nil, &list), http.StatusOK, "")
	if len(list.Items) != 1 || list.Items[0].State != store.ExperimentStopped || len(list.History) != 1 {
		t.Fatalf("list after stop %+v", list)
	}
}
