package mockapi

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/capcheck/capcheck/internal/rawio"
)

// TestCloseWriteAfterEarlyAnswer: a request whose large body the handler
// does not read (401 here) makes net/http close the connection after the
// answer, sending a FIN first (through CloseWrite) so that the client sees
// the answer's end at once, and not a reset that the unread body causes.
func TestCloseWriteAfterEarlyAnswer(t *testing.T) {
	for _, stamped := range []bool{false, true} {
		t.Run(fmt.Sprint("stamped=", stamped), func(t *testing.T) {
			s, err := New(Config{SID: testSID, APIKey: testKey})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if stamped {
				sl := rawio.StampListener(ln)
				if sl == ln {
					t.Skip("no stamps (race detector or not Linux)")
				}
				ln = sl
			}
			hs := &http.Server{Handler: s.Handler(), ConnContext: withConn}
			go hs.Serve(ln)
			defer hs.Close()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			body := strings.Repeat("x", 4<<20)
			go func() {
				fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\napi-key: wrong\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", s.Path(), len(body))
				io.WriteString(c, body)
			}()
			br := bufio.NewReader(c)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", res.StatusCode)
			}
			// Without the FIN the connection ends only when net/http
			// closes it, 500 ms after the answer.
			start := time.Now()
			c.SetReadDeadline(start.Add(3 * time.Second))
			_, err = br.ReadByte()
			if d := time.Since(start); err != io.EOF || d > 250*time.Millisecond {
				t.Errorf("after the answer: %v after %v, want io.EOF (the server's FIN) at once", err, d.Round(time.Millisecond))
			}
		})
	}
}
