package callbacks_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/capcheck/capcheck/callbacks"
	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/internal/redistest"
)

// BenchmarkCallback is one JSON callback through the handler, parsing,
// normalizing and the group commit to Redis included (no network).
func BenchmarkCallback(b *testing.B) {
	store := capstore.New(redistest.Shared(b).Client(b), capstore.Options{Prefix: redistest.NewPrefix(b)})
	r, err := callbacks.New(store, callbacks.Config{Token: token})
	if err != nil {
		b.Fatal(err)
	}
	r.Start()
	b.Cleanup(func() { _ = r.Stop(context.Background()) })
	h := r.Handler()
	var n atomic.Int64
	b.SetParallelism(32)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := `{"number":"9198` + strconv.FormatInt(100_000_000+n.Add(1), 10)[1:] + `","status":"capable"}`
			req := httptest.NewRequest(http.MethodPost, "/callback", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatal(w.Code, w.Body.String())
			}
		}
	})
}
