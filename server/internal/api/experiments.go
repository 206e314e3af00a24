package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/sluicemesh/sluice/server/internal/experiments"
	"github.com/sluicemesh/sluice/server/internal/store"
)

// ExperimentService reports on FaultExperiments and stops them. The experiments Scheduler
// implements it. Creating an experiment is applying a FaultExperiment resource.
type ExperimentService interface {
	List(ctx context.Context) ([]experiments.Status, []store.ExperimentRun, error)
	Get(ctx context.Context, namespace, name string) (*experiments.Status, []store.ExperimentRun, error)
	Stop(ctx context.Context, namespace, name, who string) (store.ExperimentRun, error)
}

var _ ExperimentService = (*experiments.Scheduler)(nil)

// errNoExperiments answers the experiment routes of a server built without a scheduler.
var errNoExperiments = &Error{Status: http.StatusServiceUnavailable, Message: "fault experiments are not available on this server"}

// handleListExperiments answers GET /api/v1/experiments with {"items":[status…],
// "history":[run…]}: every FaultExperiment with the state of its current run, and the latest
// ended runs, newest first.
func handleListExperiments(es ExperimentService, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		if es == nil {
			return errNoExperiments
		}
		items, history, err := es.List(r.Context())
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"items": nonNilSlice(items), "history": nonNilSlice(history)})
		return nil
	})
}

// handleGetExperiment answers GET /api/v1/namespaces/{namespace}/experiments/{name} with
// {"experiment": status, "runs": [run…]}; experiment is absent once the resource was deleted,
// while its runs remain.
func handleGetExperiment(es ExperimentService, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		if es == nil {
			return errNoExperiments
		}
		st, runs, err := es.Get(r.Context(), chi.URLParam(r, "namespace"), chi.URLParam(r, "name"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, struct {
			Experiment *experiments.Status   `json:"experiment,omitempty"`
			Runs       []store.ExperimentRun `json:"runs"`
		}{st, nonNilSlice(runs)})
		return nil
	})
}

// handleStopExperiment answers POST /api/v1/namespaces/{namespace}/experiments/{name}/stop:
// it ends the experiment's scheduled or running run now and answers {"run": run}; 409 when
// there is none. The FaultExperiment resource is left as it is.
func handleStopExperiment(es ExperimentService, al AuditLog, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		if es == nil {
			return errNoExperiments
		}
		ns, name := chi.URLParam(r, "namespace"), chi.URLParam(r, "name")
		run, err := es.Stop(r.Context(), ns, name, principal(r).Username)
		var notRunning *experiments.NotRunningError
		if errors.As(err, &notRunning) {
			return &Error{Status: http.StatusConflict, Message: notRunning.Error()}
		}
		if err != nil {
			return err
		}
		recordAudit(al, log, r, store.AuditEntry{
			Action: "experiment.stop", Target: "FaultExperiment/" + ns + "/" + name, Outcome: store.AuditSuccess,
			Detail: run.Reason, After: auditJSON(run),
		})
		writeJSON(w, http.StatusOK, map[string]any{"run": run})
		return nil
	})
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
