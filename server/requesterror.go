package server

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/pace/userphone/gen/api"
	"github.com/pace/userphone/openapi"
)

// requestError explains a kin-openapi validation failure as a JSON:API
// error with a pointer to the offending field.
func requestError(err error) *httpError {
	var re *openapi3filter.RequestError
	if !errors.As(err, &re) {
		return httpErrorf(api.ErrorCodeInvalidRequest, "The request does not match the API's schema.")
	}
	if re.Parameter != nil {
		return parameterError(re)
	}
	var maxBytes *http.MaxBytesError
	var schemaErr *openapi3.SchemaError
	var parseErr *openapi3filter.ParseError
	switch {
	case errors.As(re.Err, &maxBytes):
		return httpErrorf(api.ErrorCodeRequestTooLarge, "The body is larger than %d bytes.", maxBodyBytes)
	case re.RequestBody == nil:
		return httpErrorf(api.ErrorCodeInvalidRequest, "The request does not match the API's schema.")
	case strings.HasPrefix(re.Reason, "header Content-Type has unexpected value"):
		return httpErrorf(api.ErrorCodeUnsupportedMediaType, "Send the body as %s.", quotedMediaTypes(re.RequestBody))
	case errors.Is(re.Err, openapi3filter.ErrInvalidRequired):
		return httpErrorf(api.ErrorCodeInvalidRequest, "The request has no body; send one as %s.", quotedMediaTypes(re.RequestBody))
	case errors.As(re.Err, &schemaErr):
		return schemaError(schemaErr)
	case errors.As(re.Err, &parseErr):
		return httpErrorf(api.ErrorCodeInvalidRequest, "The body is not valid %s.", mediaKind(re))
	}
	return httpErrorf(api.ErrorCodeInvalidRequest, "The body cannot be read as %s.", quotedMediaTypes(re.RequestBody))
}

func parameterError(re *openapi3filter.RequestError) *httpError {
	e := httpErrorf(api.ErrorCodeInvalidRequest, "The %s parameter %q is missing or invalid.", re.Parameter.In, re.Parameter.Name)
	if errors.Is(re.Err, openapi3filter.ErrInvalidRequired) {
		e.detail = fmt.Sprintf("The %s parameter %q is required.", re.Parameter.In, re.Parameter.Name)
	}
	e.parameter = re.Parameter.Name
	return e
}

// schemaError points at the field of the body that breaks the schema.
func schemaError(schemaErr *openapi3.SchemaError) *httpError {
	reason := strings.TrimSuffix(schemaErr.Reason, ".")
	path := schemaErr.JSONPointer()
	if len(path) == 0 {
		// The whole body is at fault; RFC 6901's pointer to it is "",
		// which JSON:API clients read as no pointer at all.
		return httpErrorf(api.ErrorCodeInvalidRequest, "The body is invalid: %s.", reason)
	}
	pointer := "/" + strings.Join(path, "/")
	e := httpErrorf(api.ErrorCodeInvalidRequest, "The field %s is invalid: %s.", pointer, reason)
	e.pointer = pointer
	if schemaErr.SchemaField == "required" {
		e.detail = fmt.Sprintf("The field %s is required.", pointer)
	}
	return e
}

func quotedMediaTypes(body *openapi3.RequestBody) string {
	types := make([]string, 0, len(body.Content))
	for t := range body.Content {
		types = append(types, `"`+t+`"`)
	}
	sort.Strings(types)
	return strings.Join(types, " or ")
}

func mediaKind(re *openapi3filter.RequestError) string {
	mt, _, _ := mime.ParseMediaType(re.Input.Request.Header.Get("Content-Type"))
	if mt == "application/x-www-form-urlencoded" {
		return "form data"
	}
	return "JSON"
}

// checkJSONAPIParameters refuses JSON:API's media type with a parameter
// other than ext and profile: JSON:API 1.1 asks servers to answer 415, so
// that a client relying on a parameter the server ignores learns it.
func checkJSONAPIParameters(contentType string) error {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != openapi.MediaTypeJSONAPI {
		return nil // kin-openapi judges other media types against the spec
	}
	for p := range params {
		if p != "ext" && p != "profile" {
			return httpErrorf(api.ErrorCodeUnsupportedMediaType, "Send %s without the parameter %q: JSON:API allows only ext and profile.", openapi.MediaTypeJSONAPI, p)
		}
	}
	return nil
}
