package server

import (
	"bytes"
	"context"

	"github.com/pace/userphone"
	"github.com/pace/userphone/gen/api"
	"github.com/pace/userphone/openapi"
	"github.com/pace/userphone/templates"
)

// The confirmation pages answer a person in a browser, so every outcome of
// the link, good or bad, is an HTML page in their language.

func (h *handlers) ShowPhoneConfirmation(ctx context.Context, req api.ShowPhoneConfirmationRequestObject) (api.ShowPhoneConfirmationResponseObject, error) {
	ctx = requestContext(ctx)
	conf, err := h.flow.LookUpConfirmation(ctx, req.Params.Token)
	if err != nil {
		return nil, err
	}
	page, err := h.render(conf, req.Params.Token, req.Params.AcceptLanguage)
	if err != nil {
		return nil, err
	}
	switch conf.State {
	case userphone.LinkValid, userphone.LinkConfirmed:
		return api.ShowPhoneConfirmation200TexthtmlResponse{HTMLPageTexthtmlResponse: api.HTMLPageTexthtmlResponse(page)}, nil
	case userphone.LinkUnknown:
		return api.ShowPhoneConfirmation404TexthtmlResponse{HTMLNotFoundTexthtmlResponse: api.HTMLNotFoundTexthtmlResponse(page)}, nil
	}
	return api.ShowPhoneConfirmation410TexthtmlResponse{HTMLGoneTexthtmlResponse: api.HTMLGoneTexthtmlResponse(page)}, nil
}

func (h *handlers) ConfirmPhoneChange(ctx context.Context, req api.ConfirmPhoneChangeRequestObject) (api.ConfirmPhoneChangeResponseObject, error) {
	ctx = requestContext(ctx)
	conf, err := h.flow.Confirm(ctx, req.Body.Token)
	if err != nil {
		return nil, err
	}
	page, err := h.render(conf, "", req.Params.AcceptLanguage)
	if err != nil {
		return nil, err
	}
	switch conf.State {
	case userphone.LinkConfirmed:
		return api.ConfirmPhoneChange200TexthtmlResponse{HTMLPageTexthtmlResponse: api.HTMLPageTexthtmlResponse(page)}, nil
	case userphone.LinkUnknown:
		return api.ConfirmPhoneChange404TexthtmlResponse{HTMLNotFoundTexthtmlResponse: api.HTMLNotFoundTexthtmlResponse(page)}, nil
	}
	return api.ConfirmPhoneChange410TexthtmlResponse{HTMLGoneTexthtmlResponse: api.HTMLGoneTexthtmlResponse(page)}, nil
}

var pageKinds = map[userphone.LinkState]templates.PageKind{
	userphone.LinkValid:     templates.PageConfirm,
	userphone.LinkConfirmed: templates.PageConfirmed,
	userphone.LinkUnknown:   templates.PageUnknownLink,
	userphone.LinkUsed:      templates.PageUsedLink,
	userphone.LinkExpired:   templates.PageExpiredLink,
}

func (h *handlers) render(conf userphone.Confirmation, token string, acceptLanguage *string) (api.HTMLPageTexthtmlResponse, error) {
	accept := ""
	if acceptLanguage != nil {
		accept = *acceptLanguage
	}
	var buf bytes.Buffer
	err := templates.RenderPage(&buf, templates.Page{
		Kind:         pageKinds[conf.State],
		Lang:         templates.Lang(conf.Locale, accept),
		MaskedNumber: conf.MaskedNumber,
		Token:        token,
		ActionURL:    openapi.BasePath + openapi.ConfirmPath,
		ExpiresAt:    conf.ExpiresAt,
	})
	return api.HTMLPageTexthtmlResponse{Body: &buf, ContentLength: int64(buf.Len())}, err
}
