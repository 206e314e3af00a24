// Package filter holds the HTTP filters sluice-proxy runs before its router, and the header
// mutations routes ask for, compiled from Envoy's typed configs into immutable values that
// every request shares:
//
//   - HeaderOps: request_headers_to_add/remove and response_headers_to_add/remove of a route
//     configuration, virtual host, route or weighted cluster;
//   - Fault: envoy.filters.http.fault (envoy.extensions.filters.http.fault.v3.HTTPFault);
//   - CORS: envoy.filters.http.cors (envoy.extensions.filters.http.cors.v3.CorsPolicy);
//   - RBAC: envoy.filters.http.rbac (envoy.extensions.filters.http.rbac.v3.RBAC), the
//     translation of AuthorizationPolicies;
//   - RateLimit: envoy.filters.http.local_ratelimit
//     (envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit).
//
// A configured filter that a request does not trigger costs a few comparisons: no
// allocation, no lock.
package filter
