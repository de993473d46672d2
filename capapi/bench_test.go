package capapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/capcheck/capcheck/capapi"
)

// BenchmarkCheck is one call of 50 numbers, under a send gate, answered 202
// by a local server: the client's own cost per call (allocations, CPU),
// which the worker pays for every batch.
func BenchmarkCheck(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"code":"MSG402","message":"Request Successfully Processed","data":[],"error":{}}`)
	}))
	defer srv.Close()
	c, err := capapi.New(capapi.Config{BaseURL: srv.URL, SID: "S1", APIKey: "bench-key-0123456789", Timeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseIdleConnections()
	numbers := make([]string, 50)
	for i := range numbers {
		numbers[i] = fmt.Sprintf("+9198%08d", i)
	}
	ctx := capapi.WithSendGate(context.Background(), openGate{})
	b.ReportAllocs()
	for b.Loop() {
		if r := c.Check(ctx, numbers); r.Class != capapi.Accepted {
			b.Fatalf("Check: %v", r)
		}
	}
}

type openGate struct{}

func (openGate) Ready(context.Context) error { return nil }
