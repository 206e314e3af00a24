package api

import (
	_ "embed"
	"fmt"
	"net/http"

	"sigs.k8s.io/yaml"
)

// openAPIYAML is the API's OpenAPI 3.1 document. It is written in YAML for people to review
// and served as JSON; openapi_test.go holds it to the routes.
//
//go:embed openapi.yaml
var openAPIYAML []byte

// openAPIJSON converts the embedded document to JSON.
func openAPIJSON() ([]byte, error) {
	b, err := yaml.YAMLToJSONStrict(openAPIYAML)
	if err != nil {
		return nil, fmt.Errorf("api: openapi.yaml does not convert to JSON: %w", err)
	}
	return b, nil
}

// handleOpenAPI answers GET /api/v1/openapi.json with the OpenAPI document, to anyone: it
// describes the API, not the mesh. The document is converted once, when the routes are built,
// so a broken one stops the server at start-up rather than failing requests.
func handleOpenAPI() http.HandlerFunc {
	doc, err := openAPIJSON()
	if err != nil {
		panic(err)
	}
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		// Clients may keep it, but must check back: it changes with the server's version.
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(doc)
	}
}
