package mockapi_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/capcheck/capcheck/mockapi"
)

func ExampleServer() {
	s, err := mockapi.New(mockapi.Config{SID: "HXAP1", APIKey: "example-key", MaxBatch: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	for _, body := range []string{
		`{"number": ["919812345678", "14155550123"]}`,
		`{"number": "919812345678, 14155550123, 447911123456"}`,
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/HXAP1/messages/soip/capability-check", strings.NewReader(body))
		req.Header.Set("api-key", "example-key")
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		answer, _ := io.ReadAll(res.Body)
		res.Body.Close()
		fmt.Print(res.StatusCode, " ", string(answer))
	}
	st := s.Stats()
	fmt.Println("requests:", st.Requests, "accepted numbers:", st.Accepted, "400s:", st.ByStatus[400])
	// Output:
	// 202 {"code":"MSG402","message":"Request Successfully Processed","data":[],"error":{}}
	// 400 {"code":"RBC529","message":"Invalid input or validation error!","data":[],"error":{"error":"too many numbers: 3, at most 2 per request"}}
	// requests: 2 accepted numbers: 2 400s: 1
}
