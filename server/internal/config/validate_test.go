package config

import (
	"strings"
	"testing"
)

// doc builds a one-document YAML input; spec is written at column 0 and indented under spec.
func doc(apiVersion, kind, name, spec string) string {
	lines := strings.Split(strings.Trim(spec, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "  " + l
		}
	}
	return "apiVersion: " + apiVersion + "\nkind: " + kind + "\nmetadata:\n  name: " + name + "\nspec:\n" + strings.Join(lines, "\n") + "\n"
}

func vs(spec string) string { return doc("networking.istio.io/v1", "VirtualService", "reviews", spec) }
func dr(spec string) string { return doc("networking.istio.io/v1", "DestinationRule", "reviews", spec) }
func gw(spec string) string { return doc("networking.istio.io/v1", "Gateway", "gw", spec) }
func se(spec string) string { return doc("networking.istio.io/v1", "ServiceEntry", "external", spec) }
func pa(spec string) string { return doc("security.istio.io/v1", "PeerAuthentication", "mtls", spec) }
func ap(spec string) string {
	return doc("security.istio.io/v1", "AuthorizationPolicy", "policy", spec)
}
func fe(spec string) string { return doc("sluice.dev/v1alpha1", "FaultExperiment", "exp", spec) }
func rl(spec string) string { return doc("sluice.dev/v1alpha1", "RateLimit", "limit", spec) }

// check parses input and, if it parses, validates it: what the apply endpoint does.
func check(t *testing.T, input string, catalog Catalog) Errors {
	t.Helper()
	res, err := ParseYAML([]byte(input))
	if err != nil {
		return asErrors(t, err)
	}
	return Validate(res, catalog)
}

// bookinfoCatalog is Bookinfo's subsets and gateway, plus a VirtualService for reviews.
func bookinfoCatalog(t *testing.T) Catalog {
	return Catalog(parseSamples(t,
		"bookinfo/networking/destination-rule-all.yaml",
		"bookinfo/networking/bookinfo-gateway.yaml",
		"bookinfo/networking/certmanager-gateway.yaml",
		"bookinfo/networking/virtual-service-reviews-v3.yaml",
	))
}

type wantErr struct {
	path string
	msg  string // a substring of the message
}

func TestInvalid(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []wantErr
	}{
		// Schema: what protojson would refuse, with paths.
		{"misspelled field", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v1}
  - destination: {host: reviews, subset: v2}
    weigth: 50
`), []wantErr{{"spec.http[0].route[1].weigth", `unknown field "weigth" (did you mean "weight"?)`}}},
		{"weight is not a number", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v1}
    weight: "abc"
`), []wantErr{{"spec.http[0].route[0].weight", `expected an integer, got string "abc"`}}},
		{"weight is not an integer", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v1}
    weight: 2.5
`), []wantErr{{"spec.http[0].route[0].weight", `expected an integer, got 2.5`}}},
		{"number where a string belongs", vs(`
hosts: [reviews]
http:
- match:
  - headers: {end-user: {exact: 1.10}}
  route:
  - destination: {host: reviews, subset: v1}
`), []wantErr{{"spec.http[0].match[0].headers[end-user].exact", `expected a string, got number 1.1 (quote it in YAML`}}},
		{"string where a list belongs", vs(`
hosts: reviews
http:
- route:
  - destination: {host: reviews}
`), []wantErr{{"spec.hosts", `expected a list, got string "reviews": write a single item as a list of one`}}},
		{"object where a list belongs", vs(`
hosts: [reviews]
http:
  route:
  - destination: {host: reviews}
`), []wantErr{{"spec.http", "expected a list, got an object"}}},
		{"empty list item", vs(`
hosts:
- reviews
-
http:
- route:
  - destination: {host: reviews}
`), []wantErr{{"spec.hosts[1]", "a list item cannot be empty"}}},
		{"unknown enum value", dr(`
host: reviews
trafficPolicy: {loadBalancer: {simple: ROUND_ROBBIN}}
`), []wantErr{{"spec.trafficPolicy.loadBalancer.simple", `unknown value "ROUND_ROBBIN": use one of UNSPECIFIED, LEAST_CONN, RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST`}}},
		{"enum names are case-sensitive", pa(`
mtls: {mode: strict}
`), []wantErr{{"spec.mtls.mode", `unknown value "strict" (did you mean "STRICT"? names are case-sensitive)`}}},
		{"PeerAuthentication mode", pa(`
mtls: {mode: STRICTER}
`), []wantErr{{"spec.mtls.mode", `unknown value "STRICTER": use one of UNSET, DISABLE, PERMISSIVE, STRICT`}}},
		{"duration without a unit", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
  timeout: 5
`), []wantErr{{"spec.http[0].timeout", `expected a duration such as "5s" or "1m30s", got number 5`}}},
		{"unparsable duration", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
  timeout: 5 seconds
`), []wantErr{{"spec.http[0].timeout", `invalid duration "5 seconds"`}}},
		{"two members of a oneof", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
  fault:
    abort: {httpStatus: 503, grpcStatus: UNAVAILABLE}
`), []wantErr{{"spec.http[0].fault.abort.httpStatus", "grpcStatus and httpStatus cannot both be set"}}},
		{"one field under both of its names", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
  fault:
    delay: {fixedDelay: 1s, fixed_delay: 2s}
`), []wantErr{{"spec.http[0].fault.delay.fixed_delay", "fixedDelay and fixed_delay are the same field: keep one"}}},
		{"negative value for an unsigned field", gw(`
servers:
- port: {number: -1, name: http, protocol: HTTP}
  hosts: ["*"]
`), []wantErr{{"spec.servers[0].port.number", "-1 is out of range: use 0 to 4294967295"}}},
		{"map key of the wrong type", pa(`
selector: {matchLabels: {app: reviews}}
portLevelMtls:
  http: {mode: DISABLE}
`), []wantErr{{"spec.portLevelMtls[http]", `key "http" must be a non-negative integer`}}},
		{"null map value", vs(`
hosts: [reviews]
http:
- match:
  - headers: {end-user: }
  route:
  - destination: {host: reviews}
`), []wantErr{{"spec.http[0].match[0].headers[end-user]", "a value is required"}}},
		{"all problems at once", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subst: v1}
    weight: x
- rout: []
`), []wantErr{
			{"spec.http[0].route[0].destination.subst", `unknown field "subst" (did you mean "subset"?)`},
			{"spec.http[0].route[0].weight", "expected an integer"},
			{"spec.http[1].rout", `unknown field "rout" (did you mean "route"?)`},
		}},

		// Document structure and metadata.
		{"unknown top-level field", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
`) + "specs: {}\n", []wantErr{{"specs", `unknown field "specs" (did you mean "spec"?)`}}},
		{"unknown metadata field", strings.Replace(vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
`), "  name: reviews\n", "  name: reviews\n  lables: {app: reviews}\n", 1), []wantErr{{"metadata.lables", `unknown field "lables" (did you mean "labels"?)`}}},
		{"missing name", strings.Replace(vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
`), "  name: reviews\n", "  namespace: default\n", 1), []wantErr{{"metadata.name", "name is required"}}},
		{"invalid name", doc("networking.istio.io/v1", "VirtualService", "Reviews_V2", `
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
`), []wantErr{{"metadata.name", `name "Reviews_V2" is not valid`}}},
		{"label value not a string", strings.Replace(vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
`), "  name: reviews\n", "  name: reviews\n  labels: {version: 2}\n", 1), []wantErr{{"metadata.labels[version]", `expected a string, got number 2 (quote it in YAML: "2")`}}},
		{"missing spec", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n",
			[]wantErr{{"spec", "spec is required"}}},
		{"unknown apiVersion", strings.Replace(vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
`), "networking.istio.io/v1", "networking.istio.io/v2", 1), []wantErr{{"apiVersion", "apiVersion networking.istio.io/v2 is not accepted for kind VirtualService: use networking.istio.io/v1 or networking.istio.io/v1beta1 or networking.istio.io/v1alpha3"}}},
		{"security kind under a networking apiVersion", strings.Replace(pa(`
mtls: {mode: STRICT}
`), "security.istio.io/v1", "networking.istio.io/v1", 1), []wantErr{{"apiVersion", "use security.istio.io/v1 or security.istio.io/v1beta1"}}},
		{"unsupported kind", doc("networking.istio.io/v1alpha3", "Sidecar", "default", `
egress: []
`), []wantErr{{"kind", "kind Sidecar is not supported by Sluice (supported: VirtualService, DestinationRule, Gateway, ServiceEntry, PeerAuthentication, AuthorizationPolicy, FaultExperiment, RateLimit)"}}},
		{"missing kind", "apiVersion: v1\nmetadata: {name: x}\n", []wantErr{{"kind", "kind is required"}}},
		{"not an object", "- a\n- b\n", []wantErr{{"", "a document must be an object with apiVersion, kind, metadata and spec, not a list"}}},
		{"YAML syntax error", "apiVersion: v1\nkind: [\n", []wantErr{{"", "invalid YAML: line 2: did not find expected node content"}}},
		{"duplicate YAML key", "apiVersion: v1\nkind: VirtualService\nkind: Gateway\n", []wantErr{{"", `invalid YAML: unmarshal errors: line 3: key "kind" already set in map`}}},
		{"duplicate resource in one request", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v1}
`) + "---\n" + vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v2}
`), []wantErr{{"documents[1].metadata.name", "VirtualService default/reviews is defined twice (also at documents[0]): keep one of them"}}},

		// VirtualService.
		{"negative weight", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v1}
    weight: -10
  - destination: {host: reviews, subset: v2}
    weight: 110
`), []wantErr{{"spec.http[0].route[0].weight", "weight -10 is negative: weights are shares of the traffic, use 0 or more"}}},
		{"all weights zero", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v1}
    weight: 0
  - destination: {host: reviews, subset: v2}
    weight: 0
`), []wantErr{{"spec.http[0].route", "every weight is 0, so no destination would get traffic"}}},
		{"subset not in the DestinationRule", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v4}
`), []wantErr{{"spec.http[0].route[0].destination.subset", "subset v4 of reviews is not defined: DestinationRule default/reviews has subsets v1, v2, v3; add subset v4 there first"}}},
		{"subset of a host without DestinationRule", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v1}
  mirror: {host: httpbin, subset: v2}
`), []wantErr{{"spec.http[0].mirror.subset", "subset v2 of httpbin is not defined: apply a DestinationRule for host httpbin with subset v2 first"}}},
		{"short host resolves in the resource's namespace", strings.Replace(vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v1}
`), "  name: reviews\n", "  name: reviews\n  namespace: prod\n", 1), []wantErr{{"spec.http[0].route[0].destination.subset", "subset v1 of reviews is not defined: apply a DestinationRule for host reviews with subset v1 first"}}},
		{"invalid regex", vs(`
hosts: [reviews]
http:
- match:
  - uri: {regex: "/api/(v1"}
  route:
  - destination: {host: reviews}
`), []wantErr{{"spec.http[0].match[0].uri.regex", `invalid regular expression "/api/(v1": missing closing )`}}},
		{"invalid regex in a header match", vs(`
hosts: [reviews]
http:
- match:
  - headers: {cookie: {regex: "*user=jason"}}
  route:
  - destination: {host: reviews}
`), []wantErr{{"spec.http[0].match[0].headers[cookie].regex", "invalid regular expression"}}},
		{"empty uri match", vs(`
hosts: [reviews]
http:
- match:
  - uri: {}
  route:
  - destination: {host: reviews}
`), []wantErr{{"spec.http[0].match[0].uri", "set one of exact, prefix or regex"}}},
		{"invalid header name", vs(`
hosts: [reviews]
http:
- match:
  - headers: {"end user": {exact: jason}}
  route:
  - destination: {host: reviews}
`), []wantErr{{"spec.http[0].match[0].headers[end user]", `"end user" is not a valid HTTP header name`}}},
		{"negative timeout", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
  timeout: -1s
`), []wantErr{{"spec.http[0].timeout", "duration -1s is negative: use 0s or more"}}},
		{"zero fixedDelay", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
  fault:
    delay: {fixedDelay: 0s, percentage: {value: 10}}
`), []wantErr{{"spec.http[0].fault.delay.fixedDelay", "fixedDelay must be more than 0"}}},
		{"delay without fixedDelay", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
  fault:
    delay: {percentage: {value: 10}}
`), []wantErr{{"spec.http[0].fault.delay", "set fixedDelay, such as fixedDelay: 5s"}}},
		{"exponentialDelay", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
  fault:
    delay: {exponentialDelay: 1s}
`), []wantErr{{"spec.http[0].fault.delay.exponentialDelay", "exponentialDelay is not supported: use fixedDelay"}}},
		{"percentage over 100", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
  fault:
    delay: {fixedDelay: 1s, percentage: {value: 150}}
`), []wantErr{{"spec.http[0].fault.delay.percentage.value", "percentage 150 is out of range: use 0 to 100"}}},
		{"deprecated percent over 100", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
  fault:
    delay: {fixedDelay: 1s, percent: 101}
`), []wantErr{{"spec.http[0].fault.delay.percent", "percentage 101 is out of range: use 0 to 100"}}},
		{"negative mirror percentage", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v1}
  mirror: {host: reviews, subset: v2}
  mirrorPercentage: {value: -5}
`), []wantErr{{"spec.http[0].mirrorPercentage.value", "percentage -5 is out of range"}}},
		{"abort code over 599", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
  fault:
    abort: {httpStatus: 600, percentage: {value: 100}}
`), []wantErr{{"spec.http[0].fault.abort.httpStatus", "abort code 600 is not a valid HTTP status: use 200 to 599"}}},
		{"abort code under 200", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
  fault:
    abort: {httpStatus: 100}
`), []wantErr{{"spec.http[0].fault.abort.httpStatus", "abort code 100 is not a valid HTTP status"}}},
		{"unknown gRPC status", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
  fault:
    abort: {grpcStatus: BROKEN}
`), []wantErr{{"spec.http[0].fault.abort.grpcStatus", `unknown gRPC status "BROKEN"`}}},
		{"abort without a status", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
  fault:
    abort: {percentage: {value: 5}}
`), []wantErr{{"spec.http[0].fault.abort", "set httpStatus (such as 503) or grpcStatus"}}},
		{"empty fault", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
  fault: {}
`), []wantErr{{"spec.http[0].fault", "fault needs a delay or an abort"}}},
		{"route and redirect", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
  redirect: {uri: /v2}
`), []wantErr{{"spec.http[0]", "route and redirect cannot be combined: a rule takes one action"}}},
		{"route and directResponse", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
  directResponse: {status: 503}
`), []wantErr{{"spec.http[0]", "route and directResponse cannot be combined"}}},
		{"route and delegate", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
  delegate: {name: other}
`), []wantErr{
			{"spec.http[0]", "route and delegate cannot be combined"},
			{"spec.http[0].delegate", "delegate is not supported yet"},
		}},
		{"fault with redirect", vs(`
hosts: [reviews]
http:
- redirect: {uri: /v2}
  fault:
    abort: {httpStatus: 503}
`), []wantErr{{"spec.http[0].fault", "fault cannot be combined with redirect"}}},
		{"rewrite with directResponse", vs(`
hosts: [reviews]
http:
- directResponse: {status: 200}
  rewrite: {uri: /}
`), []wantErr{{"spec.http[0].rewrite", "rewrite cannot be combined with directResponse"}}},
		{"empty route list", vs(`
hosts: [reviews]
http:
- route: []
`), []wantErr{{"spec.http[0]", "a rule needs an action: add a route with at least one destination"}}},
		{"no rules", vs(`
hosts: [reviews]
`), []wantErr{{"spec", "a VirtualService needs at least one http, tcp or tls rule"}}},
		{"no hosts", vs(`
http:
- route:
  - destination: {host: reviews}
`), []wantErr{{"spec.hosts", "hosts is required"}}},
		{"star host in the mesh", vs(`
hosts: ["*"]
http:
- route:
  - destination: {host: reviews}
`), []wantErr{{"spec.hosts[0]", `host "*" would capture every service in the mesh: name the hosts, or bind this VirtualService to a gateway`}}},
		{"star host for mesh and a gateway", vs(`
hosts: ["*"]
gateways: [bookinfo-gateway, mesh]
http:
- route:
  - destination: {host: reviews}
`), []wantErr{{"spec.hosts[0]", `host "*" would capture every service in the mesh`}}},
		{"missing gateway", vs(`
hosts: [bookinfo.example.com]
gateways: [bookinfo-gw]
http:
- route:
  - destination: {host: productpage}
`), []wantErr{{"spec.gateways[0]", "gateway default/bookinfo-gw does not exist: apply the Gateway first, or fix the name"}}},
		{"gateway in another namespace", vs(`
hosts: [bookinfo.example.com]
gateways: [istio-system/bookinfo-gateway]
http:
- route:
  - destination: {host: productpage}
`), []wantErr{{"spec.gateways[0]", "gateway istio-system/bookinfo-gateway does not exist"}}},
		{"missing gateway in a match", vs(`
hosts: [reviews]
gateways: [mesh, bookinfo-gateway]
http:
- match:
  - gateways: [nope]
  route:
  - destination: {host: reviews}
`), []wantErr{{"spec.http[0].match[0].gateways[0]", "gateway default/nope does not exist"}}},
		{"second VirtualService for a host", doc("networking.istio.io/v1", "VirtualService", "reviews-canary", `
hosts: [reviews.default.svc.cluster.local]
http:
- route:
  - destination: {host: reviews, subset: v2}
`), []wantErr{{"spec.hosts[0]", "host reviews.default.svc.cluster.local is already routed by VirtualService default/reviews: edit that VirtualService instead"}}},
		{"duplicate host", vs(`
hosts: [reviews, reviews.default.svc.cluster.local]
http:
- route:
  - destination: {host: reviews}
`), []wantErr{{"spec.hosts[1]", "host reviews.default.svc.cluster.local is listed twice (also hosts[0])"}}},
		{"invalid host", vs(`
hosts: [reviews_v2]
http:
- route:
  - destination: {host: reviews}
`), []wantErr{{"spec.hosts[0]", `host "reviews_v2" is not a valid DNS name`}}},
		{"wildcard destination", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: "*.default.svc.cluster.local"}
`), []wantErr{{"spec.http[0].route[0].destination.host", "has a wildcard, which is not allowed here"}}},
		{"destination without host", vs(`
hosts: [reviews]
http:
- route:
  - destination: {subset: v1}
`), []wantErr{{"spec.http[0].route[0].destination.host", "host is required: name the destination service"}}},
		{"route without destination", vs(`
hosts: [reviews]
http:
- route:
  - weight: 100
`), []wantErr{{"spec.http[0].route[0].destination", "destination is required"}}},
		{"destination port out of range", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, port: {number: 70000}}
`), []wantErr{{"spec.http[0].route[0].destination.port.number", "port 70000 is out of range: use 1 to 65535"}}},
		{"redirect code not 3xx", vs(`
hosts: [reviews]
http:
- redirect: {uri: /v2, redirectCode: 200}
`), []wantErr{{"spec.http[0].redirect.redirectCode", "redirect code 200 is not a redirect (3xx) status the proxy supports: use 301, 302, 303, 307 or 308"}}},
		{"redirect that changes nothing", vs(`
hosts: [reviews]
http:
- redirect: {redirectCode: 302}
`), []wantErr{{"spec.http[0].redirect", "redirect changes nothing"}}},
		{"directResponse status", vs(`
hosts: [reviews]
http:
- directResponse: {status: 700}
`), []wantErr{{"spec.http[0].directResponse.status", "status 700 is not a valid HTTP status: use 200 to 599"}}},
		{"directResponse without status", vs(`
hosts: [reviews]
http:
- directResponse: {body: {string: hello}}
`), []wantErr{{"spec.http[0].directResponse.status", "status is required: set the status to answer, 200 to 599"}}},
		{"negative retry attempts", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
  retries: {attempts: -1}
`), []wantErr{{"spec.http[0].retries.attempts", "-1 is negative"}}},
		{"unknown retry condition", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
  retries: {attempts: 3, retryOn: "5xx,connect-failed"}
`), []wantErr{{"spec.http[0].retries.retryOn", `unknown retry condition "connect-failed"`}}},
		{"rewrite uri and regex", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
  rewrite: {uri: /, uriRegexRewrite: {match: "^/v1/(.*)", rewrite: "/\\1"}}
`), []wantErr{{"spec.http[0].rewrite.uriRegexRewrite", "uri and uriRegexRewrite cannot both be set"}}},
		{"tcp route with negative weight", vs(`
hosts: [reviews]
tcp:
- route:
  - destination: {host: reviews, subset: v1}
    weight: -1
  - destination: {host: reviews, subset: v2}
    weight: 1
`), []wantErr{{"spec.tcp[0].route[0].weight", "weight -1 is negative"}}},
		{"tls SNI host outside the hosts", vs(`
hosts: [reviews]
tls:
- match:
  - sniHosts: [ratings]
  route:
  - destination: {host: reviews}
`), []wantErr{{"spec.tls[0].match[0].sniHosts[0]", "SNI host ratings is not among this VirtualService's hosts"}}},

		{"wildcard inside a label", vs(`
hosts: ["re*views"]
http:
- route:
  - destination: {host: reviews}
`), []wantErr{{"spec.hosts[0]", `host "re*views" is not valid: a wildcard must be the whole first label`}}},
		{"exportTo", vs(`
hosts: [reviews]
exportTo: [Prod]
http:
- route:
  - destination: {host: reviews}
`), []wantErr{{"spec.exportTo[0]", `"Prod" is not a namespace`}}},
		{"tcp route without destinations", vs(`
hosts: [reviews]
tcp:
- match: [{destinationSubnets: [10.0.0.0/33]}]
  route: []
`), []wantErr{
			{"spec.tcp[0].match[0].destinationSubnets[0]", `"10.0.0.0/33" is not an IP address or CIDR block`},
			{"spec.tcp[0].route", "route is empty: add at least one destination"},
		}},
		{"redirect uri and prefixRewrite", vs(`
hosts: [reviews]
http:
- redirect: {uri: /a, prefixRewrite: /b}
`), []wantErr{{"spec.http[0].redirect.prefixRewrite", "uri and prefixRewrite cannot both be set"}}},
		{"mirror and mirrors", vs(`
hosts: [reviews]
http:
- route: [{destination: {host: reviews}}]
  mirror: {host: reviews}
  mirrors: [{destination: {host: reviews}}]
`), []wantErr{{"spec.http[0].mirrors", "mirror and mirrors cannot both be set: move mirror into mirrors"}}},
		{"mirror with redirect", vs(`
hosts: [reviews]
http:
- redirect: {uri: /x}
  mirror: {host: reviews}
`), []wantErr{{"spec.http[0].mirror", "mirroring cannot be combined with redirect"}}},
		{"rewrite that changes nothing", vs(`
hosts: [reviews]
http:
- route: [{destination: {host: reviews}}]
  rewrite: {}
`), []wantErr{{"spec.http[0].rewrite", "rewrite changes nothing"}}},
		{"zero perTryTimeout", vs(`
hosts: [reviews]
http:
- route: [{destination: {host: reviews}}]
  retries: {attempts: 2, perTryTimeout: 0s}
`), []wantErr{{"spec.http[0].retries.perTryTimeout", "duration must be more than 0"}}},
		{"http2Error", vs(`
hosts: [reviews]
http:
- route: [{destination: {host: reviews}}]
  fault: {abort: {http2Error: REFUSED_STREAM}}
`), []wantErr{{"spec.http[0].fault.abort.http2Error", "http2Error is not supported: use httpStatus or grpcStatus"}}},

		// DestinationRule.
		{"locality distribute and failover", dr(`
host: reviews
trafficPolicy:
  loadBalancer:
    localityLbSetting:
      distribute: [{from: a, to: {b: 100}}]
      failover: [{from: a, to: b}]
subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}, {name: v3, labels: {version: v3}}]
`), []wantErr{{"spec.trafficPolicy.loadBalancer.localityLbSetting", "distribute and failover cannot both be set"}}},
		{"duplicate subset", dr(`
host: reviews
subsets:
- name: v1
  labels: {version: v1}
- name: v1
  labels: {version: v2}
- name: v3
  labels: {version: v3}
`), []wantErr{{"spec.subsets[1].name", "subset v1 is defined twice (also subsets[0]): rename or remove one"}}},
		{"subset without labels", dr(`
host: reviews
subsets:
- name: v1
- name: v2
  labels: {version: v2}
- name: v3
  labels: {version: v3}
`), []wantErr{{"spec.subsets[0].labels", "subset v1 has no labels: add the labels that select its workloads, such as version: v1"}}},
		{"invalid subset name", dr(`
host: reviews
subsets:
- name: V1.0
  labels: {version: v1}
- name: v2
  labels: {version: v2}
- name: v3
  labels: {version: v3}
`), []wantErr{{"spec.subsets[0].name", `subset name "V1.0" is not valid`}}},
		{"subset without name", dr(`
host: reviews
subsets:
- labels: {version: v1}
- name: v2
  labels: {version: v2}
- name: v3
  labels: {version: v3}
`), []wantErr{{"spec.subsets[0].name", "name is required: name the subset"}}},
		{"subset still routed to", dr(`
host: reviews
subsets:
- name: v1
  labels: {version: v1}
`), []wantErr{{"spec.subsets", "subset v3 is still used by VirtualService default/reviews (spec.http[0].route[0].destination): route that traffic elsewhere first"}}},
		{"second DestinationRule for a host", doc("networking.istio.io/v1", "DestinationRule", "reviews-lb", `
host: reviews.default.svc.cluster.local
trafficPolicy: {loadBalancer: {simple: RANDOM}}
`), []wantErr{{"spec.host", "host reviews.default.svc.cluster.local already has DestinationRule default/reviews"}}},
		{"DestinationRule without host", doc("networking.istio.io/v1", "DestinationRule", "nohost", `
trafficPolicy: {loadBalancer: {simple: RANDOM}}
`), []wantErr{{"spec.host", "host is required"}}},
		{"maxEjectionPercent over 100", doc("networking.istio.io/v1", "DestinationRule", "httpbin", `
host: httpbin
trafficPolicy:
  outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 3m, maxEjectionPercent: 150}
`), []wantErr{{"spec.trafficPolicy.outlierDetection.maxEjectionPercent", "percentage 150 is out of range"}}},
		{"zero connectTimeout and negative pool", doc("networking.istio.io/v1", "DestinationRule", "httpbin", `
host: httpbin
trafficPolicy:
  connectionPool:
    tcp: {maxConnections: -1, connectTimeout: 0s}
`), []wantErr{
			{"spec.trafficPolicy.connectionPool.tcp.maxConnections", "-1 is negative: use 0 or more"},
			{"spec.trafficPolicy.connectionPool.tcp.connectTimeout", "duration must be more than 0"},
		}},
		{"port-level settings without a port", doc("networking.istio.io/v1", "DestinationRule", "httpbin", `
host: httpbin
trafficPolicy:
  portLevelSettings:
  - loadBalancer: {simple: RANDOM}
`), []wantErr{{"spec.trafficPolicy.portLevelSettings[0].port", "port is required"}}},
		{"MUTUAL without certificates", doc("networking.istio.io/v1", "DestinationRule", "external", `
host: api.example.com
trafficPolicy:
  tls: {mode: MUTUAL}
`), []wantErr{{"spec.trafficPolicy.tls", "mode MUTUAL needs clientCertificate and privateKey, or credentialName"}}},

		// Gateway.
		{"gateway without servers", gw(`
selector: {istio: ingressgateway}
`), []wantErr{{"spec.servers", "servers is required"}}},
		{"gateway port out of range", gw(`
servers:
- port: {number: 70000, name: http, protocol: HTTP}
  hosts: ["*"]
`), []wantErr{{"spec.servers[0].port.number", "port 70000 is out of range: use 1 to 65535"}}},
		{"gateway port zero", gw(`
servers:
- port: {number: 0, name: http, protocol: HTTP}
  hosts: ["*"]
`), []wantErr{{"spec.servers[0].port.number", "number is required: set the port number, 1 to 65535"}}},
		{"gateway server without hosts", gw(`
servers:
- port: {number: 80, name: http, protocol: HTTP}
  hosts: []
`), []wantErr{{"spec.servers[0].hosts", "hosts is required"}}},
		{"gateway port without name", gw(`
servers:
- port: {number: 80, protocol: HTTP}
  hosts: ["*"]
`), []wantErr{{"spec.servers[0].port.name", "name is required: name the port"}}},
		{"gateway protocol", gw(`
servers:
- port: {number: 21, name: ftp, protocol: FTP}
  hosts: ["*"]
`), []wantErr{{"spec.servers[0].port.protocol", `protocol "FTP" is not supported`}}},
		{"HTTPS server without tls", gw(`
servers:
- port: {number: 443, name: https, protocol: HTTPS}
  hosts: [bookinfo.example.com]
`), []wantErr{{"spec.servers[0].tls", "a server with protocol HTTPS needs tls: add tls with mode SIMPLE and credentialName"}}},
		{"one port, two protocols", gw(`
servers:
- port: {number: 80, name: http, protocol: HTTP}
  hosts: ["*"]
- port: {number: 80, name: tcp, protocol: TCP}
  hosts: ["*"]
`), []wantErr{{"spec.servers[1].port.protocol", "port 80 is TCP here but HTTP in servers[0]"}}},
		{"gateway host namespace", gw(`
servers:
- port: {number: 80, name: http, protocol: HTTP}
  hosts: ["Prod/bookinfo.example.com"]
`), []wantErr{{"spec.servers[0].hosts[0]", "the part before / must be a namespace"}}},

		{"server names", gw(`
servers:
- {port: {number: 443, name: https, protocol: HTTPS}, name: https, hosts: [a.example.com], tls: {mode: SIMPLE}}
- {port: {number: 443, name: https2, protocol: HTTPS}, name: https, hosts: [b.example.com], tls: {mode: SIMPLE, credentialName: b-cert}}
`), []wantErr{
			{"spec.servers[0].tls", "mode SIMPLE needs a certificate: set credentialName, or serverCertificate and privateKey"},
			{"spec.servers[1].name", "server name https is used twice (also servers[0])"},
		}},

		// ServiceEntry.
		{"service entry without hosts", se(`
ports: [{number: 443, name: https, protocol: HTTPS}]
resolution: DNS
`), []wantErr{{"spec.hosts", "hosts is required"}}},
		{"service entry ports not unique", se(`
hosts: [api.example.com]
ports:
- {number: 443, name: https, protocol: HTTPS}
- {number: 443, name: tls, protocol: TLS}
resolution: DNS
`), []wantErr{{"spec.ports[1].number", "port 443 is defined twice (also ports[0])"}}},
		{"STATIC without endpoints", se(`
hosts: [db.internal]
ports: [{number: 5432, name: tcp, protocol: TCP}]
resolution: STATIC
`), []wantErr{{"spec.endpoints", "resolution STATIC needs endpoints"}}},
		{"STATIC endpoint without an IP", se(`
hosts: [db.internal]
ports: [{number: 5432, name: tcp, protocol: TCP}]
resolution: STATIC
endpoints:
- address: db1.internal
- {}
`), []wantErr{
			{"spec.endpoints[0].address", `address "db1.internal" is not an IP address`},
			{"spec.endpoints[1].address", "address is required with resolution STATIC"},
		}},
		{"NONE with endpoints", se(`
hosts: [db.internal]
ports: [{number: 5432, name: tcp, protocol: TCP}]
resolution: NONE
endpoints: [{address: 10.0.0.1}]
`), []wantErr{{"spec.endpoints", "endpoints are not used with resolution NONE"}}},
		{"DNS with a wildcard host", se(`
hosts: ["*.example.com"]
ports: [{number: 443, name: https, protocol: HTTPS}]
resolution: DNS
`), []wantErr{{"spec.hosts[0]", "host *.example.com cannot be resolved with resolution DNS"}}},
		{"endpoint port name", se(`
hosts: [db.internal]
ports: [{number: 5432, name: tcp, protocol: TCP}]
resolution: STATIC
endpoints: [{address: 10.0.0.1, ports: {postgres: 15432}}]
`), []wantErr{{"spec.endpoints[0].ports[postgres]", "postgres is not the name of one of this ServiceEntry's ports"}}},
		{"service entry address", se(`
hosts: [db.internal]
addresses: [10.0.0.0/33]
ports: [{number: 5432, name: tcp, protocol: TCP}]
resolution: NONE
`), []wantErr{{"spec.addresses[0]", `"10.0.0.0/33" is not an IP address or CIDR block`}}},

		{"service entry port names, round robin, selector and endpoints", se(`
hosts: [a.example.com]
ports: [{number: 443, name: https}, {number: 444, name: https}]
resolution: DNS_ROUND_ROBIN
endpoints: [{address: a.example.com}, {address: b.example.com}]
workloadSelector: {labels: {app: a}}
`), []wantErr{
			{"spec.ports[1].name", "port name https is used twice (also ports[0])"},
			{"spec.workloadSelector", "workloadSelector and endpoints cannot both be set"},
			{"spec.endpoints", "resolution DNS_ROUND_ROBIN takes at most one endpoint"},
		}},
		{"service entry bare star", se(`
hosts: ["*"]
ports: [{number: 443, name: https}]
`), []wantErr{{"spec.hosts[0]", `host "*" is not allowed`}}},

		// PeerAuthentication.
		{"portLevelMtls without selector", pa(`
mtls: {mode: STRICT}
portLevelMtls:
  8080: {mode: DISABLE}
`), []wantErr{{"spec.portLevelMtls", "portLevelMtls needs a selector"}}},
		{"portLevelMtls port zero", pa(`
selector: {matchLabels: {app: reviews}}
portLevelMtls:
  0: {mode: DISABLE}
`), []wantErr{{"spec.portLevelMtls[0]", "port 0 is out of range"}}},

		{"second namespace-wide PeerAuthentication", pa(`
mtls: {mode: STRICT}
`) + "---\n" + doc("security.istio.io/v1", "PeerAuthentication", "default", `
mtls: {mode: PERMISSIVE}
`), []wantErr{
			{"documents[0].spec", "namespace default already has a namespace-wide PeerAuthentication (default): edit that one, or add a selector to this one"},
			{"documents[1].spec", "namespace default already has a namespace-wide PeerAuthentication (mtls)"},
		}},

		// AuthorizationPolicy.
		{"CUSTOM action", ap(`
action: CUSTOM
provider: {name: ext-authz}
rules: [{to: [{operation: {paths: [/admin]}}]}]
`), []wantErr{{"spec.action", "action CUSTOM is not supported: Sluice has no external authorizers; use ALLOW, DENY or AUDIT"}}},
		{"requestPrincipals", ap(`
rules:
- from:
  - source: {requestPrincipals: ["*"]}
`), []wantErr{{"spec.rules[0].from[0].source.requestPrincipals", "JWT is not supported yet"}}},
		{"notRequestPrincipals", ap(`
action: DENY
rules:
- from:
  - source: {notRequestPrincipals: ["*"]}
`), []wantErr{{"spec.rules[0].from[0].source.notRequestPrincipals", "JWT is not supported yet"}}},
		{"JWT claim condition", ap(`
rules:
- when:
  - key: request.auth.claims[iss]
    values: [https://accounts.google.com]
`), []wantErr{{"spec.rules[0].when[0].key", "JWT is not supported yet"}}},
		{"malformed principal", ap(`
rules:
- from:
  - source: {principals: [default/sa/bookinfo-productpage]}
`), []wantErr{{"spec.rules[0].from[0].source.principals[0]", `principal "default/sa/bookinfo-productpage" is not valid: write <trust domain>/ns/<namespace>/sa/<service account>`}}},
		{"principal with scheme", ap(`
rules:
- from:
  - source: {principals: ["spiffe://cluster.local/ns/default/sa/x"]}
`), []wantErr{{"spec.rules[0].from[0].source.principals[0]", "drop the scheme"}}},
		{"principal wildcard in the middle", ap(`
rules:
- from:
  - source: {notPrincipals: ["cluster.local/ns/*/sa/x"]}
`), []wantErr{{"spec.rules[0].from[0].source.notPrincipals[0]", "has a wildcard in the middle"}}},
		{"principal prefix that cannot match", ap(`
rules:
- from:
  - source: {principals: ["cluster.local/namespace/*"]}
`), []wantErr{{"spec.rules[0].from[0].source.principals[0]", "is not valid"}}},
		{"malformed CIDR", ap(`
action: DENY
rules:
- from:
  - source: {ipBlocks: [10.0.0.0/33], remoteIpBlocks: [not-an-ip]}
`), []wantErr{
			{"spec.rules[0].from[0].source.ipBlocks[0]", `"10.0.0.0/33" is not an IP address or CIDR block`},
			{"spec.rules[0].from[0].source.remoteIpBlocks[0]", `"not-an-ip" is not an IP address or CIDR block`},
		}},
		{"empty source", ap(`
rules:
- from:
  - source: {}
`), []wantErr{{"spec.rules[0].from[0].source", "source is empty"}}},
		{"from without source", ap(`
rules:
- from:
  - {}
`), []wantErr{{"spec.rules[0].from[0].source", "source is required"}}},
		{"operation port", ap(`
rules:
- to:
  - operation: {ports: [http]}
`), []wantErr{{"spec.rules[0].to[0].operation.ports[0]", `"http" is not a port`}}},
		{"operation path", ap(`
rules:
- to:
  - operation: {paths: [api/v1]}
`), []wantErr{{"spec.rules[0].to[0].operation.paths[0]", `path "api/v1" must start with /`}}},
		{"condition attribute", ap(`
rules:
- when:
  - key: source.pod
    values: [x]
`), []wantErr{{"spec.rules[0].when[0].key", `unknown attribute "source.pod"`}}},
		{"condition without values", ap(`
rules:
- when:
  - key: source.ip
`), []wantErr{{"spec.rules[0].when[0]", "set values or notValues"}}},
		{"targetRef", ap(`
targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}
rules: [{}]
`), []wantErr{{"spec.targetRef", "targetRef is not supported: select workloads with selector.matchLabels"}}},

		{"provider without CUSTOM", ap(`
action: DENY
provider: {name: ext-authz}
rules: [{to: [{operation: {}}]}]
`), []wantErr{
			{"spec.provider", "provider is only used with action CUSTOM: remove it"},
			{"spec.rules[0].to[0].operation", "operation is empty"},
		}},
		{"namespaces, service accounts, methods, empty values", ap(`
rules:
- from:
  - source: {namespaces: [Prod], serviceAccounts: [bookinfo]}
  to:
  - operation: {methods: ["GET /"], paths: [/a, ""]}
`), []wantErr{
			{"spec.rules[0].from[0].source.namespaces[0]", `"Prod" is not a namespace name`},
			{"spec.rules[0].from[0].source.serviceAccounts[0]", `"bookinfo" is not a service account: write <namespace>/<name>`},
			{"spec.rules[0].from[0].source.serviceAccounts", "serviceAccounts cannot be combined with principals or namespaces"},
			{"spec.rules[0].to[0].operation.methods[0]", `"GET /" is not an HTTP method`},
			{"spec.rules[0].to[0].operation.paths[1]", "empty value: remove it"},
		}},
		{"AUDIT action with a provider", ap(`
action: AUDIT
provider: {name: ext-authz}
rules: [{}]
`), []wantErr{{"spec.provider", "provider is only used with action CUSTOM: remove it"}}},

		// FaultExperiment.
		{"experiment without a fault", fe(`
host: ratings
duration: 10m
`), []wantErr{{"spec", "a FaultExperiment needs a delay, an abort, or both"}}},
		{"experiment too long", fe(`
host: ratings
delay: {fixedDelay: 2s}
duration: 48h
`), []wantErr{{"spec.duration", "duration 48h0m0s is over the limit of 24h0m0s"}}},
		{"experiment without duration", fe(`
host: ratings
delay: {fixedDelay: 2s}
`), []wantErr{{"spec.duration", "duration is required"}}},
		{"experiment without host", fe(`
abort: {httpStatus: 503}
duration: 5m
`), []wantErr{{"spec.host", "host is required"}}},
		{"experiment error rate as a percentage", fe(`
host: ratings
abort: {httpStatus: 503, percentage: 10}
duration: 5m
guard: {maxErrorRate: 5}
`), []wantErr{{"spec.guard.maxErrorRate", "maxErrorRate 5 is out of range: it is a fraction from 0 to 1"}}},
		{"experiment guard without rate", fe(`
host: ratings
abort: {httpStatus: 503}
duration: 5m
guard: {window: 30s}
`), []wantErr{{"spec.guard.maxErrorRate", "maxErrorRate is required"}}},
		{"experiment abort code", fe(`
host: ratings
abort: {httpStatus: 700}
duration: 5m
`), []wantErr{{"spec.abort.httpStatus", "abort code 700 is not a valid HTTP status"}}},
		{"experiment abort with both statuses", fe(`
host: ratings
abort: {httpStatus: 503, grpcStatus: UNAVAILABLE}
duration: 5m
`), []wantErr{{"spec.abort", "httpStatus and grpcStatus cannot both be set"}}},
		{"experiment percentage", fe(`
host: ratings
delay: {fixedDelay: 1s, percentage: 150}
duration: 5m
`), []wantErr{{"spec.delay.percentage", "percentage 150 is out of range"}}},
		{"experiment percentage as an Istio Percent", fe(`
host: ratings
delay: {fixedDelay: 1s, percentage: {value: 50}}
duration: 5m
`), []wantErr{{"spec.delay.percentage", "expected a number, got an object"}}},
		{"experiment misspelled field", fe(`
host: ratings
delay: {fixedDelya: 1s}
duration: 5m
`), []wantErr{{"spec.delay.fixedDelya", `unknown field "fixedDelya" (did you mean "fixedDelay"?)`}}},
		{"experiment delay without fixedDelay", fe(`
host: ratings
delay: {percentage: 50}
duration: 5m
`), []wantErr{{"spec.delay.fixedDelay", "fixedDelay must be more than 0"}}},
		{"experiment header regex", fe(`
host: ratings
match:
  headers: {end-user: {regex: "(jason"}}
abort: {httpStatus: 503}
duration: 5m
`), []wantErr{{"spec.match.headers[end-user].regex", "invalid regular expression"}}},
		{"experiment start", fe(`
host: ratings
abort: {httpStatus: 503}
start: tomorrow
duration: 5m
`), []wantErr{{"spec.start", `invalid time "tomorrow": use RFC 3339`}}},

		{"experiment guard window", fe(`
host: ratings
abort: {httpStatus: 503}
duration: 5m
guard: {maxErrorRate: 0.1, window: -5s}
`), []wantErr{{"spec.guard.window", "window -5s is negative"}}},

		// RateLimit.
		{"rate limit of zero", rl(`
requestsPerUnit: 0
unit: second
`), []wantErr{{"spec.requestsPerUnit", "requestsPerUnit must be more than 0"}}},
		{"rate limit unit", rl(`
requestsPerUnit: 10
unit: day
`), []wantErr{{"spec.unit", `unit "day" is not supported: use second, minute or hour`}}},
		{"rate limit without unit", rl(`
requestsPerUnit: 10
`), []wantErr{{"spec.unit", "unit is required"}}},
		{"negative burst", rl(`
requestsPerUnit: 10
unit: second
burst: -1
`), []wantErr{{"spec.burst", "burst -1 is negative"}}},
		{"rate limit route prefix", rl(`
route: {uriPrefix: api}
requestsPerUnit: 10
unit: second
`), []wantErr{{"spec.route.uriPrefix", `uriPrefix "api" must start with /`}}},
		{"rate limit per header", rl(`
requestsPerUnit: 10
unit: second
perHeader: "x user"
`), []wantErr{{"spec.perHeader", `"x user" is not a valid HTTP header name`}}},
		{"rate limit type mismatch", rl(`
requestsPerUnit: ten
unit: second
`), []wantErr{{"spec.requestsPerUnit", `expected an integer, got string "ten"`}}},
		{"rate limit selector labels", rl(`
selector: {matchLabels: {"app name": productpage}}
requestsPerUnit: 10
unit: second
`), []wantErr{{"spec.selector.matchLabels[app name]", `label key "app name" is not valid`}}},
	}
	catalog := bookinfoCatalog(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := check(t, tt.input, catalog)
			if !matches(errs, tt.want) {
				t.Errorf("got errors:\n%v\nwant:\n%s", errs, formatWant(tt.want))
			}
		})
	}
}

// matches reports whether errs are exactly the wanted errors, in order.
func matches(errs Errors, want []wantErr) bool {
	if len(errs) != len(want) {
		return false
	}
	for i, w := range want {
		if errs[i].Path != w.path || !strings.Contains(errs[i].Message, w.msg) {
			return false
		}
	}
	return true
}

func formatWant(want []wantErr) string {
	var b strings.Builder
	for _, w := range want {
		b.WriteString(w.path + ": …" + w.msg + "…\n")
	}
	return b.String()
}

func TestValid(t *testing.T) {
	tests := []struct {
		name  string
		input string
	}{
		{"AUDIT action", ap(`
action: AUDIT
rules: [{to: [{operation: {paths: [/admin/*]}}]}]
`)},
		{"star host on a gateway", vs(`
hosts: ["*"]
gateways: [bookinfo-gateway]
http:
- route:
  - destination: {host: productpage, port: {number: 9080}}
`)},
		{"gateway in another namespace", vs(`
hosts: [acme.example.com]
gateways: [istio-system/cert-manager-gateway]
http:
- route:
  - destination: {host: cert-manager-resolver}
`)},
		{"proto field names, numbers in strings, Go durations", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v1}
    weight: "75"
  - destination: {host: reviews, subset: v2}
    weight: 25
  timeout: 1m30s
  retries: {attempts: 3, per_try_timeout: 500ms, retry_on: "5xx,reset,503"}
  fault:
    delay: {fixed_delay: 1.5s, percentage: {value: 0.1}}
    abort: {http_status: 503, percentage: {value: 1}}
`)},
		{"fully qualified destination from another namespace", strings.Replace(vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews.default.svc.cluster.local, subset: v2}
`), "  name: reviews\n", "  name: reviews\n  namespace: prod\n", 1)},
		{"header presence match", vs(`
hosts: [reviews]
http:
- match:
  - headers: {end-user: {}}
    withoutHeaders: {x-canary: {}}
  route:
  - destination: {host: reviews, subset: v2}
- route:
  - destination: {host: reviews, subset: v1}
`)},
		{"single destination with weight 0", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v1}
    weight: 0
`)},
		{"redirect and directResponse rules", vs(`
hosts: [reviews]
http:
- match: [{uri: {prefix: /old}}]
  redirect: {uri: /new, redirectCode: 308}
- match: [{uri: {exact: /health}}]
  directResponse: {status: 200, body: {string: ok}}
- route:
  - destination: {host: reviews}
`)},
		{"subset from a wildcard DestinationRule", doc("networking.istio.io/v1", "DestinationRule", "all", `
host: "*.example.com"
subsets:
- name: blue
  labels: {color: blue}
`) + "---\n" + doc("networking.istio.io/v1", "VirtualService", "api", `
hosts: [api.example.com]
http:
- route:
  - destination: {host: api.example.com, subset: blue}
`) + "---\n" + se(`
hosts: [api.example.com]
ports: [{number: 443, name: https, protocol: HTTPS}]
resolution: DNS
`)},
		{"principal wildcards", ap(`
rules:
- from:
  - source:
      principals:
      - "*"
      - cluster.local/ns/default/sa/*
      - "*/ns/default/sa/bookinfo-productpage"
      - "*-productpage"
      - cluster.local/*
      namespaces: [default, "prod-*"]
      ipBlocks: [10.0.0.0/8, 192.168.1.7, "2001:db8::/32"]
  to:
  - operation: {methods: [GET, HEAD], paths: [/api/*, "*/info", "/users/{*}/profile/{**}"], ports: ["9080"]}
  when:
  - key: request.headers[x-tier]
    values: [gold]
  - key: source.ip
    notValues: [10.1.0.0/16]
`)},
		{"DENY policy", ap(`
action: DENY
selector: {matchLabels: {app: ratings}}
rules:
- to:
  - operation: {methods: [POST]}
`)},
		{"PeerAuthentication with port-level modes", pa(`
selector: {matchLabels: {app: reviews}}
mtls: {mode: STRICT}
portLevelMtls:
  9080: {mode: PERMISSIVE}
`)},
		{"HTTPS gateway", gw(`
selector: {istio: ingressgateway}
servers:
- port: {number: 443, name: https, protocol: HTTPS}
  hosts: [bookinfo/bookinfo.example.com]
  tls: {mode: SIMPLE, credentialName: bookinfo-cert}
- port: {number: 80, name: http, protocol: http}
  hosts: ["*/bookinfo.example.com"]
  tls: {httpsRedirect: true}
`)},
		{"STATIC service entry", se(`
hosts: [db.internal]
addresses: [10.9.0.0/16]
ports: [{number: 5432, name: tcp, protocol: TCP}]
resolution: STATIC
endpoints:
- {address: 10.9.0.1, ports: {tcp: 15432}, labels: {zone: a}}
- {address: 10.9.0.2}
`)},
		{"FaultExperiment", fe(`
host: ratings
match:
  headers: {end-user: {exact: jason}}
  sourceLabels: {app: reviews}
delay: {fixedDelay: 2s, percentage: 50}
abort: {grpcStatus: UNAVAILABLE, percentage: 1.5}
start: 2026-03-01T10:00:00Z
duration: 10m
guard: {maxErrorRate: 0.05}
`)},
		{"RateLimit", rl(`
selector: {matchLabels: {app: productpage}}
route: {uriPrefix: /api/, headers: {x-plan: free}}
requestsPerUnit: 100
unit: minute
burst: 0
perHeader: x-user
`)},
		{"RateLimit for a whole namespace", rl(`
requestsPerUnit: 5
unit: second
`)},
	}
	catalog := bookinfoCatalog(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if errs := check(t, tt.input, catalog); len(errs) > 0 {
				t.Errorf("unexpected errors:\n%v", errs)
			}
		})
	}
}
