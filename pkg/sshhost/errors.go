package sshhost

import "fmt"

// kindError is an error of a hostapi kind (ErrUnreachable, ...) whose
// message is its own: the kind classifies it, the message explains it.
type kindError struct{ kind, err error }

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

func kindErrorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}
