// Package openapi holds the spec, the source of truth for the API, and the
// generator configs that turn it into gen/. Every other fact about the API
// that code needs (its base path, the path of an operation, the parsed
// document for validation) is derived here from the one embedded file.
package openapi

import (
	"bytes"
	_ "embed"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/getkin/kin-openapi/openapi3"
)

// MediaTypeJSONAPI is JSON:API's media type: the spec's phone documents,
// its error documents and its UpdateUserPhone request body.
const MediaTypeJSONAPI = "application/vnd.api+json"

// SpecPath is where an instance serves its spec (ServedBy), at its root,
// outside BasePath.
const SpecPath = "/openapi.yaml"

// Spec is the OpenAPI document exactly as committed, served at SpecPath
// and parsed by Load.
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

// Routable is r as a router of the spec must see it: by its decoded path,
// as gin routes it. A path with a needless escape ("/user/%70hone") keeps
// its raw form in URL.RawPath, which kin-openapi's router matches instead,
// and would miss the operation that gin found.
func Routable(r *http.Request) *http.Request {
	if r.URL.RawPath == "" {
		return r
	}
	u := *r.URL
	u.RawPath = ""
	r2 := *r
	r2.URL = &u
	return &r2
}

// ServedBy is the spec as an instance serves it: with the instance's own
// API base URL as the first server, so that the reference page (/docs)
// and tools that take the first server try requests against this instance,
// not PACE production. An empty base serves the spec as it is.
func ServedBy(base string) []byte {
	if base == "" {
		return Spec
	}
	const servers = "\nservers:\n"
	i := bytes.Index(Spec, []byte(servers))
	if i < 0 {
		panic("openapi: the spec has no top-level servers list")
	}
	entry := "  - url: " + strconv.Quote(base) + "\n    description: This instance\n"
	out := make([]byte, 0, len(Spec)+len(entry))
	out = append(out, Spec[:i+len(servers)]...)
	out = append(out, entry...)
	return append(out, Spec[i+len(servers):]...)
}
