package jobstore

import "time"

// SetClock makes s read the time from now, for tests.
func (s *Store) SetClock(now func() time.Time) { s.now = now }
