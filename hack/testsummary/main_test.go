package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestSummary(t *testing.T) {
	in := strings.Join([]string{
		`go: downloading something`,
		`{"Action":"run","Test":"TestA"}`,
		`{"Action":"output","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"output","Test":"TestA/Sub","Output":"    a_test.go:10: the container cannot start: CreateContainerConfigError\n"}`,
		`{"Action":"output","Test":"TestA/Sub","Output":"--- FAIL: TestA/Sub (1.45s)\n"}`,
		`{"Action":"fail","Test":"TestA/Sub","Elapsed":1.45}`,
		`{"Action":"output","Test":"TestA/Ok","Output":"    a_test.go:20: fine\n"}`,
		`{"Action":"pass","Test":"TestA/Ok","Elapsed":1}`,
		`{"Action":"fail","Test":"TestA","Elapsed":105}`,
		`{"Action":"output","Test":"TestB","Output":"    b_test.go:5: all good\n"}`,
		`{"Action":"pass","Test":"TestB","Elapsed":3}`,
		`{"Action":"fail","Elapsed":110}`,
	}, "\n")
	var out bytes.Buffer
	failed, err := run(strings.NewReader(in), &out)
	if err != nil || !failed {
		t.Fatalf("failed = %v, err = %v", failed, err)
	}
	got := out.String()
	summary := got[strings.Index(got, "=== failure summary"):]
	for _, want := range []string{
		"go: downloading something\n",   // non-JSON passes through
		"    a_test.go:20: fine\n",      // output is printed as it comes
		"=== failure summary: 2 failed", // both the subtest and its parent
		"--- FAIL: TestA/Sub (1.4s), its last lines:\n    a_test.go:10: the container cannot start", // why, at the end
		"--- FAIL: TestA (105.0s): see its subtests",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(summary, "fine") || strings.Contains(summary, "all good") {
		t.Errorf("the summary shows lines of passed tests:\n%s", summary)
	}

	out.Reset()
	failed, err = run(strings.NewReader(`{"Action":"pass","Test":"TestB"}`+"\n"+`{"Action":"pass"}`), &out)
	if err != nil || failed || strings.Contains(out.String(), "summary") {
		t.Errorf("a passing run: failed = %v, err = %v, output %q", failed, err, out.String())
	}
}
