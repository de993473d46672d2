package rawio

import (
	"net"
	"time"
)

// Arrival returns when the last segment c read reached the host, when c is
// a connection of a [StampListener] that got the kernel's stamp; else the
// zero time.
func Arrival(c net.Conn) time.Time {
	if a, ok := c.(interface{ Arrival() time.Time }); ok {
		return a.Arrival()
	}
	return time.Time{}
}
