package support

import (
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestCheck(t *testing.T) {
	f := Fields{
		"envoy.config.route.v3.RouteConfiguration": {"name", "virtual_hosts"},
		"envoy.config.route.v3.VirtualHost":        {"name", "domains", "routes"},
		"envoy.config.route.v3.Route":              {"match", "route"},
	}
	tests := []struct {
		name string
		rc   *routev3.RouteConfiguration
		want string
	}{
		{"allowed", &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "v", Domains: []string{"*"}}}}, ""},
		{"zero wrapper counts as unset", &routev3.RouteConfiguration{ValidateClusters: wrapperspb.Bool(false)}, ""},
		{"set wrapper", &routev3.RouteConfiguration{ValidateClusters: wrapperspb.Bool(true)}, "validate_clusters: not supported by sluice-proxy"},
		{"nested, with indexes", &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{}, {Routes: []*routev3.Route{{}, {Name: "x"}}}}},
			"virtual_hosts[1].routes[1].name: not supported by sluice-proxy"},
		{"unlisted message types are opaque", &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Routes: []*routev3.Route{
			{Match: &routev3.RouteMatch{RuntimeFraction: nil, PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Grpc: &routev3.RouteMatch_GrpcRouteMatchOptions{}}}}}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.rc, f)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Check = %q, want %q", got, tt.want)
			}
		})
	}
}
