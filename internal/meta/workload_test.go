package meta

import "testing"

func TestTelemetryWorkload(t *testing.T) {
	for _, tc := range []struct {
		name, instance, service, version, address, want string
	}{
		{"default instance name", "reviews-v2-127.0.0.6", "reviews", "v2", "127.0.0.6", "reviews-v2"},
		{"no name", "", "reviews", "v2", "127.0.0.6", "reviews-v2"},
		{"chosen name", "reviews-canary", "reviews", "v2", "127.0.0.6", "reviews-canary"},
		{"default name without a version label", "istio-ingressgateway-v1-127.0.0.10", "istio-ingressgateway", "", "127.0.0.10", "istio-ingressgateway"},
		{"another instance's default name is a chosen name", "reviews-v2-127.0.0.7", "reviews", "v2", "127.0.0.6", "reviews-v2-127.0.0.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := TelemetryWorkload(tc.instance, tc.service, tc.version, tc.address); got != tc.want {
				t.Errorf("TelemetryWorkload(%q, %q, %q, %q) = %q, want %q", tc.instance, tc.service, tc.version, tc.address, got, tc.want)
			}
		})
	}
}
