package configs

import (
	"errors"
	"fmt"
)

// ErrUsage matches (with errors.Is) every error that means "bad usage or
// configuration": the process should exit with code 2 and print the message,
// which says what to fix.
var ErrUsage = errors.New("bad usage or configuration")

// Error is a usage or configuration problem. Its message names the option and
// says what to fix, e.g.
//
//	--rate must be > 0 (got -1); set --rate, CAPCHECK_RATE or rate: in the config file
//
// It never holds the value of a secret. errors.Is(err, ErrUsage) is true.
type Error struct {
	// Option is the flag name (without dashes) the problem is about, or ""
	// when it is about no single option (the config file as a whole, a
	// command's arguments).
	Option string
	// Msg is the full message.
	Msg string
}

// Usagef returns an [*Error] with a formatted message and no option, for
// usage problems found outside this package (e.g. a missing argument).
func Usagef(format string, args ...any) error {
	return &Error{Msg: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string { return e.Msg }

// Is makes errors.Is(err, ErrUsage) true.
func (e *Error) Is(target error) bool { return target == ErrUsage }
