package server

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/pace/userphone/openapi"
)

var strictJSONOnce sync.Once

// registerStrictJSONDecoders makes kin-openapi refuse a JSON body with
// data after its value: its own decoder reads the first value and ignores
// what follows, and such a body is not JSON. kin-openapi keeps body
// decoders in a registry of its process, with no per-validation choice, so
// this changes that registry, once, for the two JSON media types the spec
// takes.
func registerStrictJSONDecoders() {
	strictJSONOnce.Do(func() {
		for _, mt := range []string{"application/json", openapi.MediaTypeJSONAPI} {
			openapi3filter.RegisterBodyDecoder(mt, strictJSON)
		}
	})
}

func strictJSON(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	dec := json.NewDecoder(body)
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &openapi3filter.ParseError{Kind: openapi3filter.KindInvalidFormat, Cause: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &openapi3filter.ParseError{Kind: openapi3filter.KindInvalidFormat, Reason: "data after the JSON value"}
	}
	return v, nil
}
