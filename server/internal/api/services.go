package api

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/server/internal/changes"
)

// serviceView is a service of the mesh: its versions with their endpoints, and how its
// catch-all traffic is split between them.
type serviceView struct {
	Namespace string         `json:"namespace"`
	Name      string         `json:"name"`
	Host      string         `json:"host"`
	Versions  []versionView  `json:"versions"`
	Traffic   *changes.Split `json:"traffic"`
}

type versionView struct {
	Version   string         `json:"version"`
	Endpoints []endpointView `json:"endpoints"`
}

type endpointView struct {
	Workload  string `json:"workload"`
	Address   string `json:"address"`
	Connected bool   `json:"connected"`
	Draining  bool   `json:"draining"`
}

// services groups the registered sidecars of a namespace ("" for all) into services.
func services(pl ProxyLister, namespace string) []*serviceView {
	byKey := map[string]*serviceView{}
	var out []*serviceView
	for _, p := range pl.Proxies() {
		if p.Mode != meta.ModeSidecar || len(p.Ports) == 0 || (namespace != "" && p.Namespace != namespace) {
			continue
		}
		k := p.Namespace + "/" + p.Service
		s := byKey[k]
		if s == nil {
			s = &serviceView{Namespace: p.Namespace, Name: p.Service, Host: meta.FQDN(p.Service, p.Namespace)}
			byKey[k] = s
			out = append(out, s)
		}
		v := p.Labels["version"]
		i := slices.IndexFunc(s.Versions, func(vv versionView) bool { return vv.Version == v })
		if i < 0 {
			s.Versions = append(s.Versions, versionView{Version: v})
			i = len(s.Versions) - 1
		}
		s.Versions[i].Endpoints = append(s.Versions[i].Endpoints, endpointView{
			Workload: p.Name, Address: p.Address.String(), Connected: p.Connected, Draining: p.Draining,
		})
	}
	slices.SortFunc(out, func(a, b *serviceView) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
	for _, s := range out {
		slices.SortFunc(s.Versions, func(a, b versionView) int { return strings.Compare(a.Version, b.Version) })
	}
	return out
}

// handleListServices answers the services of a namespace with their versions and split.
func handleListServices(pl ProxyLister, svc *changes.Service, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		ss := services(pl, chi.URLParam(r, "namespace"))
		for _, s := range ss {
			split, err := svc.Traffic(r.Context(), s.Namespace, s.Name)
			if err != nil {
				return err
			}
			s.Traffic = split
		}
		writeJSON(w, http.StatusOK, map[string]any{"services": ss})
		return nil
	})
}

// handleGetService answers one service.
func handleGetService(pl ProxyLister, svc *changes.Service, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		ns, name := chi.URLParam(r, "namespace"), chi.URLParam(r, "name")
		for _, s := range services(pl, ns) {
			if s.Name != name {
				continue
			}
			split, err := svc.Traffic(r.Context(), ns, name)
			if err != nil {
				return err
			}
			s.Traffic = split
			writeJSON(w, http.StatusOK, s)
			return nil
		}
		return &Error{Status: http.StatusNotFound, Message: "service " + ns + "/" + name + " has no registered workload"}
	})
}

// trafficRequest is the body of PUT .../services/{name}/traffic.
type trafficRequest struct {
	Weights map[string]int32 `json:"weights"`
}

// handleSetTraffic sets the split of a service's catch-all route (the canary slider). The
// precondition is the VirtualService's resourceVersion, in If-Match.
func handleSetTraffic(svc *changes.Service, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		var req trafficRequest
		if err := decodeJSON(w, r, &req); err != nil {
			return err
		}
		ifv, err := ifMatch(r)
		if err != nil {
			return err
		}
		out, err := svc.SetTraffic(r.Context(), actor(r), chi.URLParam(r, "namespace"), chi.URLParam(r, "name"), req.Weights, ifv)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, outcomeView(out, false))
		return nil
	})
}
