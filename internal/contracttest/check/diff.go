package check

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Diff compares two specs, the one an instance serves with the one it was
// built from, as whole documents: info, the top-level security, the paths
// and every component (schemas, parameters, headers, responses, security
// schemes with their scopes, ...), each $ref as written. It names the
// first difference as a JSON pointer (RFC 6901) with both sides' values,
// or returns "" when they agree. Left out is what may differ without
// changing what a client may send or must accept: prose (description,
// summary, example, examples, externalDocs, what a scope is for) and the
// servers (an instance lists itself first).
func Diff(served, embedded *openapi3.T) string {
	at, s, e, differ := firstDifference(contractTree(served), contractTree(embedded), "")
	if !differ {
		return ""
	}
	if at == "" {
		at = "/"
	}
	return fmt.Sprintf("at %s: served %s, embedded %s", at, Shorten(s, 160), Shorten(e, 160))
}

// firstDifference walks two JSON trees in key order and returns the JSON
// pointer of the first difference and both sides' JSON there. Arrays of
// different lengths differ as a whole: which element was dropped is
// clearer from both lists than from the first index that differs.
func firstDifference(a, b any, at string) (pointer, aJSON, bJSON string, differ bool) {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		for _, k := range slices.Sorted(maps.Keys(mergeKeys(am, bm))) {
			if p, x, y, d := firstDifference(am[k], bm[k], at+"/"+escapePointer(k)); d {
				return p, x, y, d
			}
		}
		return "", "", "", false
	}
	as, aok := a.([]any)
	bs, bok := b.([]any)
	if aok && bok && len(as) == len(bs) {
		for i := range as {
			if p, x, y, d := firstDifference(as[i], bs[i], at+"/"+strconv.Itoa(i)); d {
				return p, x, y, d
			}
		}
		return "", "", "", false
	}
	if reflect.DeepEqual(a, b) {
		return "", "", "", false
	}
	return at, jsonText(a), jsonText(b), true
}

// escapePointer escapes a key for a JSON pointer: "/user/phone" is
// "~1user~1phone".
func escapePointer(key string) string {
	return strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1")
}

func mergeKeys(a, b map[string]any) map[string]any {
	all := maps.Clone(a)
	maps.Copy(all, b)
	return all
}

func jsonText(v any) string {
	if v == nil {
		return "(none)"
	}
	b, _ := json.Marshal(v) // maps marshal with sorted keys
	return string(b)
}

// contractTree is doc as a JSON tree without its prose and servers.
func contractTree(doc *openapi3.T) any {
	b, err := json.Marshal(doc)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	var tree any
	if err := json.Unmarshal(b, &tree); err != nil {
		return "<" + err.Error() + ">"
	}
	return withoutProse(tree, anObject)
}

// What a JSON value of a spec is, for telling prose from names: the keys
// of an OpenAPI object are its fields ("description" is prose there); the
// keys of a map by name are names (a property may be called
// "description"); values given as they are (an enum, a default) are data.
type part int

const (
	anObject part = iota
	aMapByName
	scopeNames // a flow's scopes: the names are the contract, the values say what they are for
	data
)

// The fields of OpenAPI objects whose value is a map by name, and those
// whose value is data.
var (
	mapsByName = map[string]bool{"paths": true, "schemas": true, "responses": true, "parameters": true,
		"headers": true, "requestBodies": true, "securitySchemes": true, "links": true, "callbacks": true,
		"content": true, "encoding": true, "properties": true, "mapping": true, "webhooks": true, "pathItems": true}
	dataFields = map[string]bool{"enum": true, "default": true, "const": true}
	// prose is what a spec says to people, not to clients.
	prose = map[string]bool{"description": true, "summary": true, "example": true, "examples": true,
		"externalDocs": true, "servers": true}
)

// fieldPart is what the value of an OpenAPI object's field is; for a
// list, what its items are.
func fieldPart(field string, value any) part {
	_, list := value.([]any)
	switch {
	case field == "security" && list:
		return aMapByName // security requirements: scheme name → scopes
	case dataFields[field] || strings.HasPrefix(field, "x-"):
		return data
	case list:
		return anObject // parameters, allOf's schemas, tags, required's names
	case field == "scopes":
		return scopeNames
	case mapsByName[field]:
		return aMapByName
	}
	return anObject
}

func withoutProse(v any, p part) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			switch p {
			case data:
				out[k] = x
			case scopeNames:
				out[k] = ""
			case aMapByName:
				out[k] = withoutProse(x, anObject)
			default:
				if !prose[k] {
					out[k] = withoutProse(x, fieldPart(k, x))
				}
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = withoutProse(x, p)
		}
		return out
	}
	return v
}
