// Package openapi holds the spec, the source of truth for the API, and the
// generator configs that turn it into gen/. Every other fact about the API
// that code needs (its base path, the path of an operation, the parsed
// document for validation) is derived here from the one embedded file.
package openapi

import (
	_ "embed"
	"fmt"
	"net/url"

	"github.com/getkin/kin-openapi/openapi3"
)

// Spec is the OpenAPI document exactly as committed, served at
// /openapi.yaml and parsed by Load.
//
//go:embed userphone.yaml
var Spec []byte

// Load parses Spec into a document of the caller's own, which it may
// change (a validator routes on the path alone, say).
func Load() (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromData(Spec)
	if err != nil {
		return nil, fmt.Errorf("load the embedded spec: %w", err)
	}
	return doc, nil
}

// The API's paths, as the spec gives them. The spec is embedded and its
// tests parse it, so a failure here is a build bug, caught at start-up.
var (
	// BasePath is where the API lives: the path of the spec's first server
	// (PACE production), so PACE's documented requests work with only the
	// host changed.
	BasePath string
	// ConfirmPath is the path of the confirmation page under BasePath,
	// the page that the link in the confirmation e-mail opens.
	ConfirmPath string
)

func init() {
	doc, err := Load()
	if err != nil {
		panic(err)
	}
	BasePath = basePathOf(doc)
	ConfirmPath = PathOf(doc, "ConfirmPhoneChange")
}

func basePathOf(doc *openapi3.T) string {
	if len(doc.Servers) == 0 {
		panic("openapi: the spec lists no server")
	}
	u, err := url.Parse(doc.Servers[0].URL)
	if err != nil || u.Path == "" {
		panic(fmt.Sprintf("openapi: the first server %q has no path", doc.Servers[0].URL))
	}
	return u.Path
}

// PathOf returns the path (under BasePath) of the operation operationID.
func PathOf(doc *openapi3.T, operationID string) string {
	for path, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			if op.OperationID == operationID {
				return path
			}
		}
	}
	panic("openapi: the spec has no operation " + operationID)
}
