package recover

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// Receive keeps only a whole upload with the announced size and sha256 at
// the final name; a cut or damaged one leaves nothing; a rerun finds it.
func TestReceive(t *testing.T) {
	h := staticpod.NewHost(t.TempDir())
	data := bytes.Repeat([]byte("etcd snapshot bytes "), 5000)
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	final := h.Path(UploadPath(hexSum))

	if _, _, err := Receive(h, bytes.NewReader(data[:1000]), hexSum, int64(len(data))); err == nil || !strings.Contains(err.Error(), "cut short") {
		t.Errorf("a cut upload: %v, want it refused as cut short", err)
	}
	damaged := bytes.Clone(data)
	damaged[10] ^= 1
	if _, _, err := Receive(h, bytes.NewReader(damaged), hexSum, int64(len(data))); err == nil || !strings.Contains(err.Error(), "damaged on the way") {
		t.Errorf("a damaged upload: %v, want it refused as damaged", err)
	}
	if left, _ := filepath.Glob(h.Path(UploadDir) + "/*"); len(left) != 0 {
		t.Errorf("refused uploads left %v", left)
	}
	path, had, err := Receive(h, bytes.NewReader(data), hexSum, int64(len(data)))
	if err != nil || had || path != UploadPath(hexSum) {
		t.Fatalf("Receive = %s, %v, %v", path, had, err)
	}
	if got, _ := os.ReadFile(final); !bytes.Equal(got, data) {
		t.Error("the upload's bytes differ")
	}
	if _, had, err := Receive(h, strings.NewReader(""), hexSum, int64(len(data))); err != nil || !had {
		t.Errorf("a rerun: already there = %v, %v; want it found without reading", had, err)
	}
	if _, _, err := Receive(h, bytes.NewReader(data), "../../etc/passwd", 1); err == nil {
		t.Error("a path instead of a sha256 was accepted")
	}
}

// ReadRun tells a finished restore from a failed one and from one whose
// process is gone without a result.
func TestReadRun(t *testing.T) {
	h := staticpod.NewHost(t.TempDir())
	sum := strings.Repeat("ab", 32)
	if r, err := ReadRun(h, sum); err != nil || r != nil {
		t.Fatalf("no record: %v, %v", r, err)
	}
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(h.Path(p)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(h.Path(p), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(runStatePath(sum), `{"snapshot":"/x.db","pid":999999999,"log":"/l/r.log","resultFile":"/l/r.json"}`)
	write("/l/r.log", "step one\nstep two: it broke\n")
	r, err := ReadRun(h, sum)
	if err != nil || r.State != "failed" || !strings.Contains(r.Error, "it broke") {
		t.Errorf("process gone, no result: %+v, %v", r, err)
	}
	write("/l/r.json", `{"verb":"restore","error":"boom"}`)
	if r, _ = ReadRun(h, sum); r.State != "failed" || r.Error != "boom" {
		t.Errorf("a failed result: %+v", r)
	}
	write("/l/r.json", `{"verb":"restore","notes":["ok"]}`)
	if r, _ = ReadRun(h, sum); r.State != "done" || r.Outcome == nil {
		t.Errorf("a result: %+v", r)
	}
}
