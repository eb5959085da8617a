// Package userphone holds the domain of the phone-number change flow: its
// types, states and error codes. Adapters live in their own packages: HTTP in
// server, persistence in store, message delivery in delivery.
package userphone

//go:generate go tool oapi-codegen -config openapi/models.cfg.yaml openapi/userphone.yaml
//go:generate go tool oapi-codegen -config openapi/server.cfg.yaml openapi/userphone.yaml
//go:generate go tool oapi-codegen -config openapi/client.cfg.yaml openapi/userphone.yaml
