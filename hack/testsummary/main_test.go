package main

import (
	"bytes"
	"os"
	"path/filepath"
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
	failed, err := run(strings.NewReader(in), &out, nil)
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
	failed, err = run(strings.NewReader(`{"Action":"pass","Test":"TestB"}`+"\n"+`{"Action":"pass"}`), &out, nil)
	if err != nil || failed || strings.Contains(out.String(), "summary") {
		t.Errorf("a passing run: failed = %v, err = %v, output %q", failed, err, out.String())
	}
}

// A t.Errorf early in a long test is shown in the summary, with its
// continuation lines; a failing helper's message (reported at its caller's
// line) too; a logging helper's lines and plain t.Logf lines are not.
func TestSummaryFailureMessages(t *testing.T) {
	dir := t.TempDir()
	src := `package e2e

import "testing"

func TestStory(t *testing.T) {
	t.Logf("starting")
	if true {
		t.Errorf("rerun: %v\n%s",
			nil, "out")
	}
	mustBe(t, 1)
	say(t, "hello")
}

func mustBe(t *testing.T, n int) {
	t.Helper()
	if n != 2 {
		t.Fatalf("n is %d", n)
	}
}

func say(t *testing.T, s string) {
	t.Helper()
	t.Logf("%s", s)
	mustBe(t, 2)
}
`
	if err := os.WriteFile(filepath.Join(dir, "story_test.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	sites, err := failSites(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"story_test.go:8", "story_test.go:11"} {
		if !sites[want] {
			t.Errorf("failSites lacks %s: %v", want, sites)
		}
	}
	for _, not := range []string{"story_test.go:6", "story_test.go:12"} {
		if sites[not] {
			t.Errorf("failSites has %s (a log line's site): %v", not, sites)
		}
	}

	lines := []string{`{"Action":"output","Test":"TestStory","Output":"    story_test.go:6: starting\n"}`,
		`{"Action":"output","Test":"TestStory","Output":"    story_test.go:8: rerun: <nil>\n"}`,
		`{"Action":"output","Test":"TestStory","Output":"        out\n"}`,
	}
	for i := 0; i < 40; i++ {
		lines = append(lines, `{"Action":"output","Test":"TestStory","Output":"    story_test.go:12: hello\n"}`)
	}
	lines = append(lines, `{"Action":"output","Test":"TestStory","Output":"    story_test.go:11: n is 1\n"}`,
		`{"Action":"fail","Test":"TestStory","Elapsed":3}`)
	var out bytes.Buffer
	failed, err := run(strings.NewReader(strings.Join(lines, "\n")), &out, sites)
	if err != nil || !failed {
		t.Fatalf("failed = %v, err = %v", failed, err)
	}
	got := out.String()
	summary := got[strings.Index(got, "=== failure summary"):]
	want := "--- FAIL: TestStory (3.0s), its failure messages:\n    story_test.go:8: rerun: <nil>\n        out\n    story_test.go:11: n is 1\n    … and its last lines:\n"
	if !strings.Contains(summary, want) {
		t.Errorf("summary lacks\n%s\ngot:\n%s", want, summary)
	}
	if strings.Contains(summary, "starting") {
		t.Errorf("the summary shows a t.Logf line as a failure:\n%s", summary)
	}
}
