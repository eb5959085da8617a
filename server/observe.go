package server

import (
	"regexp"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"
)

// Observer is told of each request once it has been answered, for metrics.
// Its method must be quick and must not block.
type Observer interface {
	// ObserveRequest is told the request's operation, its status and how
	// long the answer took. The operation is the spec's operationId, else
	// the route (such as /health/ready), else "unmatched": never the raw
	// path, so that the set of values stays small whatever clients send.
	ObserveRequest(operation string, status int, took time.Duration)
}

// Unmatched is the operation of a request that matched no route.
const Unmatched = "unmatched"

// observeRequests tells obs of every request after the rest of the chain
// has answered it. ops maps "METHOD route" to the operationId, for
// requests answered before the validator has named their operation (the
// client limit's 429s).
func observeRequests(obs Observer, ops map[string]string) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		op := c.GetString(operationIDKey)
		if op == "" {
			route := c.FullPath()
			op = ops[c.Request.Method+" "+route]
			if op == "" {
				op = route
			}
			if op == "" {
				op = Unmatched
			}
		}
		obs.ObserveRequest(op, c.Writer.Status(), time.Since(start))
	}
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

// operationIDs maps "METHOD route", as gin names the route, to the
// operationId of each operation in doc.
func operationIDs(doc *openapi3.T, basePath string) map[string]string {
	ops := map[string]string{}
	for path, item := range doc.Paths.Map() {
		route := basePath + pathParam.ReplaceAllString(path, ":$1")
		for method, op := range item.Operations() {
			ops[method+" "+route] = op.OperationID
		}
	}
	return ops
}
