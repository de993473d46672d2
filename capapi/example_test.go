package capapi_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/capcheck/capcheck/capapi"
	"github.com/capcheck/capcheck/mockapi"
)

func ExampleClient_Check() {
	// A simulated provider that refuses numbers ending in 999.
	mock, err := mockapi.New(mockapi.Config{SID: "HXAP1", APIKey: "example-key", RejectSuffix: "999"})
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := httptest.NewServer(mock.Handler())
	defer srv.Close()

	c, err := capapi.New(capapi.Config{BaseURL: srv.URL, SID: "HXAP1", APIKey: "example-key"})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	for _, batch := range [][]string{
		{"+919812345678", "+14155550123"},
		{"+919812345678", "+919800000999"}, // one invalid number fails the batch
	} {
		res := c.Check(ctx, batch)
		switch res.Class {
		case capapi.Accepted:
			fmt.Println(res.Class, res.StatusCode, res.Code)
		case capapi.Invalid:
			fmt.Println(res.Class, res.StatusCode, res.Code, res.Message)
		default:
			fmt.Println("unexpected:", res)
		}
	}
	// Output:
	// accepted 202 MSG402
	// invalid 400 RBC529 Invalid input or validation error!: invalid number: 919800000999
}

func ExampleNew() {
	_, err := capapi.New(capapi.Config{BaseURL: "api.kaleyra.io", SID: "HXAP1", APIKey: "k"})
	fmt.Println(err)
	// Output:
	// capapi: API base URL must start with http:// or https://: use the form https://host[/prefix], such as https://api.kaleyra.io
}
