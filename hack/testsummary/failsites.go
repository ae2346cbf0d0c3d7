package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
)

// failSites finds, in the test files of dir, the lines from which a test
// reports a failure: calls of t.Error, t.Errorf, t.Fatal, t.Fatalf, and
// calls of the package's helpers (functions calling t.Helper) that fail but
// never log, since the testing package reports a helper's message at its
// caller's line. A failed test's output lines that start with one of these
// sites say why it failed, wherever in a long log they came; helpers that
// also log are left out, or their every log line would look like a failure.
// The result maps "file.go:LINE" to true.
func failSites(dir string) (map[string]bool, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	var parsed []*ast.File
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		parsed = append(parsed, af)
	}

	// What each helper calls: testing methods directly, other funcs by name.
	type helper struct {
		fails, logs bool
		calls       []string
	}
	helpers := map[string]*helper{}
	for _, af := range parsed {
		for _, d := range af.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil || fd.Recv != nil {
				continue
			}
			h := &helper{}
			isHelper := false
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				switch fn := call.Fun.(type) {
				case *ast.SelectorExpr:
					switch fn.Sel.Name {
					case "Helper":
						isHelper = true
					case "Error", "Errorf", "Fatal", "Fatalf":
						h.fails = true
					case "Log", "Logf":
						h.logs = true
					}
				case *ast.Ident:
					h.calls = append(h.calls, fn.Name)
				}
				return true
			})
			if isHelper {
				helpers[fd.Name.Name] = h
			}
		}
	}
	// A helper that calls a failing (or logging) helper fails (or logs) too.
	for changed := true; changed; {
		changed = false
		for _, h := range helpers {
			for _, c := range h.calls {
				if o, ok := helpers[c]; ok && o != h {
					if o.fails && !h.fails || o.logs && !h.logs {
						h.fails, h.logs = h.fails || o.fails, h.logs || o.logs
						changed = true
					}
				}
			}
		}
	}

	sites := map[string]bool{}
	for _, af := range parsed {
		ast.Inspect(af, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			site := false
			switch fn := call.Fun.(type) {
			case *ast.SelectorExpr:
				switch fn.Sel.Name {
				case "Error", "Errorf", "Fatal", "Fatalf":
					site = true
				}
			case *ast.Ident:
				if h, ok := helpers[fn.Name]; ok && h.fails && !h.logs {
					site = true
				}
			}
			if site {
				// A call split over lines is reported at its first line or
				// at its parenthesis: mark both.
				for _, p := range []token.Pos{call.Pos(), call.Lparen} {
					pos := fset.Position(p)
					sites[filepath.Base(pos.Filename)+":"+strconv.Itoa(pos.Line)] = true
				}
			}
			return true
		})
	}
	return sites, nil
}

// siteOf is the "file.go:LINE" a test's output line starts with, or "".
var siteRE = regexp.MustCompile(`^\s+([A-Za-z0-9_.\-]+\.go:\d+): `)

func siteOf(line string) string {
	if m := siteRE.FindStringSubmatch(line); m != nil {
		return m[1]
	}
	return ""
}
