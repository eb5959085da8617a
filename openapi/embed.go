// Package openapi holds the spec, the source of truth for the API, and the
// generator configs that turn it into gen/.
package openapi

import _ "embed"

// Spec is the OpenAPI document exactly as committed, served at
// /openapi.yaml.
//
//go:embed userphone.yaml
var Spec []byte
