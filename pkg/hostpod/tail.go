package hostpod

import (
	"bytes"
	"io"
	"sync"
	"sync/atomic"
)

// tailBuffer keeps the last lines written to it, so a failure can quote the
// end of the agent's stderr without holding all of it.
type tailBuffer struct {
	mu       sync.Mutex
	maxLines int
	maxBytes int
	buf      []byte
}

func newTailBuffer(maxLines, maxBytes int) *tailBuffer {
	return &tailBuffer{maxLines: maxLines, maxBytes: maxBytes}
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.maxBytes {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.maxBytes:]...)
	}
	return len(p), nil
}

// String returns at most maxLines lines and maxBytes bytes of the end.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return lastLines(t.buf, t.maxLines, t.maxBytes)
}

func lastLines(b []byte, maxLines, maxBytes int) string {
	b = bytes.TrimRight(b, "\n")
	if len(b) > maxBytes {
		b = b[len(b)-maxBytes:]
	}
	for i, n := len(b)-1, 0; i >= 0; i-- {
		if b[i] == '\n' {
			if n++; n == maxLines {
				return string(b[i+1:])
			}
		}
	}
	return string(b)
}

// sawWriter records whether anything was written through it.
type sawWriter struct {
	w   io.Writer
	saw atomic.Bool // the stream's copy goroutines may outlive a cancelled attach
}

func (s *sawWriter) Write(p []byte) (int, error) {
	if len(p) > 0 {
		s.saw.Store(true)
	}
	return s.w.Write(p)
}
