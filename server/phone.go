package server

import (
	"context"

	"github.com/gin-gonic/gin"

	"github.com/pace/userphone"
	"github.com/pace/userphone/gen/api"
)

// Flow is what the handlers need of the change flow (package flow).
type Flow interface {
	RequestChange(ctx context.Context, id userphone.Identity, rawNumber string) (p userphone.Phone, created bool, err error)
	Verify(ctx context.Context, id userphone.Identity, code string) (userphone.Phone, error)
	Check(ctx context.Context, id userphone.Identity) (p userphone.Phone, found bool, err error)
	// LookUpConfirmation tells what a link's token stands for, changing
	// nothing; Confirm confirms the change it stands for.
	LookUpConfirmation(ctx context.Context, token string) (userphone.Confirmation, error)
	Confirm(ctx context.Context, token string) (userphone.Confirmation, error)
}

// handlers implements the generated strict-server interface on the flow.
// Errors go back to the strict handler, which hands them to writeError.
type handlers struct {
	flow Flow
}

var _ api.StrictServerInterface = (*handlers)(nil)

func (h *handlers) UpdateUserPhone(ctx context.Context, req api.UpdateUserPhoneRequestObject) (api.UpdateUserPhoneResponseObject, error) {
	ctx = requestContext(ctx)
	p, created, err := h.flow.RequestChange(ctx, identityFrom(ctx), req.Body.Data.Attributes.PhoneNumber)
	if err != nil {
		return nil, err
	}
	if created {
		return api.UpdateUserPhone201ApplicationVndAPIPlusJSONResponse{Body: phoneDocument(p)}, nil
	}
	return api.UpdateUserPhone200ApplicationVndAPIPlusJSONResponse{Body: phoneDocument(p)}, nil
}

func (h *handlers) VerifyUserPhone(ctx context.Context, req api.VerifyUserPhoneRequestObject) (api.VerifyUserPhoneResponseObject, error) {
	ctx = requestContext(ctx)
	p, err := h.flow.Verify(ctx, identityFrom(ctx), req.Body.Code)
	if err != nil {
		return nil, err
	}
	return api.VerifyUserPhone200ApplicationVndAPIPlusJSONResponse{Body: phoneDocument(p)}, nil
}

func (h *handlers) CheckUserPhone(ctx context.Context, _ api.CheckUserPhoneRequestObject) (api.CheckUserPhoneResponseObject, error) {
	ctx = requestContext(ctx)
	p, found, err := h.flow.Check(ctx, identityFrom(ctx))
	switch {
	case err != nil:
		return nil, err
	case !found:
		return nil, httpErrorf(api.ErrorCodeNotFound, "The user has no phone number; set one with UpdateUserPhone.")
	case p.Verified:
		return api.CheckUserPhone200ApplicationVndAPIPlusJSONResponse{Body: phoneDocument(p)}, nil
	}
	return api.CheckUserPhone201ApplicationVndAPIPlusJSONResponse{Body: phoneDocument(p)}, nil
}

// requestContext unwraps the *gin.Context that the strict server passes as
// ctx. gin recycles its contexts when a request ends, while the database
// driver and message delivery may still hold ctx, so only the request's own
// context may travel further.
func requestContext(ctx context.Context) context.Context {
	if c, ok := ctx.(*gin.Context); ok {
		return c.Request.Context()
	}
	return ctx
}

func phoneDocument(p userphone.Phone) api.PhoneDocument {
	attrs := api.PhoneAttributes{PhoneNumber: p.Number, Verified: p.Verified}
	if c := p.Pending; c != nil {
		attrs.PendingChange = &api.PendingChange{
			PhoneNumber: c.PhoneNumber,
			Status:      api.PendingChangeStatus(c.Status),
			ExpiresAt:   c.ExpiresAt,
		}
	}
	return api.PhoneDocument{Data: api.PhoneResource{Type: api.PhoneResourceTypePhone, Id: p.UserID, Attributes: attrs}}
}
