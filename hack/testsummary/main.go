// Command testsummary reads `go test -json` on stdin, prints the tests'
// output as `go test -v` would, and ends with a short summary of each failed
// test's last lines. CI shows only the start and the end of a long log: the
// end must say why a test failed, not only that it did. Lines that are not
// JSON (build errors) pass through unchanged. It exits 1 when a test failed.
//
// With -src DIR (the tests' package directory), the summary also shows each
// failed test's failure messages (t.Errorf and the like, found by reading
// DIR's test files), wherever they came in the test's output: a t.Errorf
// early in a long story is otherwise lost under its later lines.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// event is the part of test2json's TestEvent used here.
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

const (
	linesPerTest = 12  // the end of a failed test's own output: its t.Fatal/t.Error come last
	failLines    = 12  // failure messages (and their continuation lines) kept per test
	contLines    = 3   // continuation lines kept after a failure message's first line
	maxLineLen   = 300 // a line of a dumped manifest or log is cut here
	maxFailed    = 6   // a run with more failures than this has one cause to look for first
)

type failure struct {
	name    string
	elapsed float64
	tail    []string
	errs    []string // its failure messages, when the sites are known
}

func main() {
	src := flag.String("src", "", "the tests' package directory, to find their failure messages")
	flag.Parse()
	var sites map[string]bool
	if *src != "" {
		var err error
		if sites, err = failSites(*src); err != nil {
			// The summary still has the last lines: say so and go on.
			fmt.Fprintln(os.Stderr, "testsummary: reading the tests' failure sites:", err)
		}
	}
	failed, err := run(os.Stdin, os.Stdout, sites)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer, sites map[string]bool) (bool, error) {
	tails := map[string][]string{} // test name -> its last output lines
	errs := map[string][]string{}  // test name -> its failure messages
	cont := map[string]int{}       // test name -> continuation lines still to keep
	var failures []failure
	pkgFailed := false
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			fmt.Fprintf(out, "%s\n", line)
			continue
		}
		if ev.Output != "" {
			io.WriteString(out, ev.Output)
			if ev.Test != "" {
				t := append(tails[ev.Test], strings.TrimRight(ev.Output, "\n"))
				if len(t) > 4*linesPerTest {
					t = t[len(t)-linesPerTest:]
				}
				tails[ev.Test] = t
				keepFailure(ev.Test, strings.TrimRight(ev.Output, "\n"), sites, errs, cont)
			}
		}
		if ev.Action == "fail" {
			if ev.Test == "" {
				pkgFailed = true
				continue
			}
			t := tails[ev.Test]
			// Drop go test's own "--- FAIL" lines: the summary names the test.
			var own []string
			for _, l := range t {
				if s := strings.TrimSpace(l); !strings.HasPrefix(s, "--- FAIL") && !strings.HasPrefix(s, "=== ") {
					own = append(own, l)
				}
			}
			if len(own) > linesPerTest {
				own = own[len(own)-linesPerTest:]
			}
			failures = append(failures, failure{name: ev.Test, elapsed: ev.Elapsed, tail: own, errs: errs[ev.Test]})
		}
	}
	if err := sc.Err(); err != nil {
		return true, err
	}
	if len(failures) == 0 {
		return pkgFailed, nil
	}
	// Subtests fail before their parent: keep a parent only for its own
	// lines when none of its subtests failed with lines of their own.
	fmt.Fprintf(out, "\n=== failure summary: %d failed (the full output is above)\n", len(failures))
	shown := 0
	for i, f := range failures {
		if hasFailedChild(failures[:i], f.name) {
			fmt.Fprintf(out, "--- FAIL: %s (%.1fs): see its subtests\n", f.name, f.elapsed)
			continue
		}
		if shown == maxFailed {
			fmt.Fprintf(out, "--- FAIL: %s (%.1fs)\n", f.name, f.elapsed)
			continue
		}
		shown++
		if len(f.errs) > 0 {
			fmt.Fprintf(out, "--- FAIL: %s (%.1fs), its failure messages:\n", f.name, f.elapsed)
			for _, l := range f.errs {
				if len(l) > maxLineLen {
					l = l[:maxLineLen] + " …"
				}
				fmt.Fprintln(out, l)
			}
			fmt.Fprintf(out, "    … and its last lines:\n")
		} else {
			fmt.Fprintf(out, "--- FAIL: %s (%.1fs), its last lines:\n", f.name, f.elapsed)
		}
		for _, l := range f.tail {
			if len(l) > maxLineLen {
				l = l[:maxLineLen] + " …"
			}
			fmt.Fprintln(out, l)
		}
	}
	return true, nil
}

// keepFailure records line in errs[test] when it starts with a failure site,
// with the few indented lines that continue its message.
func keepFailure(test, line string, sites map[string]bool, errs map[string][]string, cont map[string]int) {
	if len(sites) == 0 {
		return
	}
	site := siteOf(line)
	switch {
	case site != "" && sites[site]:
		if len(errs[test]) < failLines {
			errs[test] = append(errs[test], line)
			cont[test] = contLines
		}
	case site == "" && cont[test] > 0 && strings.HasPrefix(line, "        ") && len(errs[test]) < failLines:
		errs[test] = append(errs[test], line)
		cont[test]--
	default:
		cont[test] = 0
	}
}

func hasFailedChild(earlier []failure, parent string) bool {
	for _, f := range earlier {
		if strings.HasPrefix(f.name, parent+"/") {
			return true
		}
	}
	return false
}
