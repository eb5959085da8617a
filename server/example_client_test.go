package server_test

import (
	"context"
	"fmt"
	"net/http"

	"github.com/pace/userphone/gen/api"
)

// The Go client that oapi-codegen generates into gen/api, as the README
// shows it: the harness's tests drive the service through the same client.
// This example is compiled with the tests, so the README's snippet cannot
// drift from the generated code; it has no Output, so it does not run.
func Example_goClient() {
	ctx := context.Background()
	token := "…" // the user's access token
	client, err := api.NewClientWithResponses("http://localhost:8080/user/2021-2",
		api.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			req.Header.Set("Authorization", "Bearer "+token)
			return nil
		}))
	if err != nil {
		panic(err)
	}

	var body api.UpdateUserPhoneApplicationVndAPIPlusJSONRequestBody
	body.Data.Type = "phone"
	body.Data.Attributes.PhoneNumber = "+4915112345678"
	res, err := client.UpdateUserPhoneWithApplicationVndAPIPlusJSONBodyWithResponse(ctx, body)
	if err != nil {
		panic(err) // the network, not the API
	}
	switch {
	case res.ApplicationvndApiJSON201 != nil: // a change is pending: its status names the next step
		fmt.Println(res.ApplicationvndApiJSON201.Data.Attributes.PendingChange.Status)
	case res.ApplicationvndApiJSON200 != nil: // already the verified number
	case res.ApplicationvndApiJSON422 != nil: // each error status has its typed JSON:API document
		fmt.Println(res.ApplicationvndApiJSON422.Errors[0].Code) // invalid-phone-number, …
	}

	verified, err := client.VerifyUserPhoneWithResponse(ctx, api.VerifyUserPhoneJSONRequestBody{Code: "123456"})
	if err == nil && verified.StatusCode() == http.StatusOK {
		fmt.Println(verified.ApplicationvndApiJSON200.Data.Attributes.PhoneNumber)
	}
}
