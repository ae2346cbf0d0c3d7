// Package plan runs a verb as a list of named steps: printed in full by
// --dry-run, announced one line each as they run, and reported step by step
// in -o json. Observation happens before the plan is made, so the plan a dry
// run prints is the plan a real run carries out on the same state.
package plan

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Step is one action of a plan.
type Step struct {
	Name   string
	Detail string
	// Run does the step; the returned note is printed after "done".
	Run func(ctx context.Context) (note string, err error)
	// RunSteps, instead of Run, does a step that drives another plan (a
	// host verb run from the workstation) and returns that plan's steps,
	// reported as this step's sub-steps (also when it fails part-way).
	RunSteps func(ctx context.Context) (note string, sub []StepResult, err error)
}

// StepResult is what happened to a step.
type StepResult struct {
	Name     string `json:"name"`
	Detail   string `json:"detail,omitempty"`
	Outcome  string `json:"outcome"` // planned | done | failed | not-run
	Note     string `json:"note,omitempty"`
	Error    string `json:"error,omitempty"`
	Duration string `json:"duration,omitempty"`
	// Steps are the sub-steps of a step that drove another plan.
	Steps []StepResult `json:"steps,omitempty"`
}

// Plan is a verb's steps, with a title saying what it is for.
type Plan struct {
	Title string
	// Notes are facts about the plan printed under its title (what is lost,
	// what is left to the operator), in a dry run and a real run alike.
	Notes []string
	Steps []Step
	// finally runs when Execute returns, whatever happened: for what a step
	// holds open across later steps (join's apiserver bridge), which must
	// not outlive the plan when a later step fails.
	finally []func()
}

// Finally registers f to run, in reverse order of registration, when
// Execute returns (also after a failure, an interruption or a dry run).
func (p *Plan) Finally(f func()) {
	p.finally = append(p.finally, f)
}

// Add appends a step.
func (p *Plan) Add(name, detail string, run func(ctx context.Context) (string, error)) {
	p.Steps = append(p.Steps, Step{Name: name, Detail: detail, Run: run})
}

// AddSteps appends a step that drives another plan (see Step.RunSteps).
func (p *Plan) AddSteps(name, detail string, run func(ctx context.Context) (string, []StepResult, error)) {
	p.Steps = append(p.Steps, Step{Name: name, Detail: detail, RunSteps: run})
}

// Print writes the whole plan, for a verb that asks before it runs it.
func (p *Plan) Print(out io.Writer) { p.print(out, "") }

func (p *Plan) print(out io.Writer, suffix string) {
	fmt.Fprintf(out, "Plan: %s%s\n", p.Title, suffix)
	for _, n := range p.Notes {
		fmt.Fprintf(out, "  %s\n", n)
	}
	if len(p.Steps) == 0 {
		fmt.Fprintln(out, "  nothing to do")
	}
	for i, s := range p.Steps {
		fmt.Fprintf(out, "  %d. %s: %s\n", i+1, s.Name, s.Detail)
	}
}

// Execute runs the plan (or, when dryRun, only prints it), writing progress
// to out (nil for none), and returns each step's result. It stops at the
// first failure; the error names the step.
func (p *Plan) Execute(ctx context.Context, out io.Writer, dryRun bool) ([]StepResult, error) {
	if out == nil {
		out = io.Discard
	}
	defer func() {
		for i := len(p.finally) - 1; i >= 0; i-- {
			p.finally[i]()
		}
	}()
	results := make([]StepResult, len(p.Steps))
	for i, s := range p.Steps {
		results[i] = StepResult{Name: s.Name, Detail: s.Detail, Outcome: "not-run"}
	}
	if dryRun {
		p.print(out, " (dry run: nothing will be changed)")
		for i := range results {
			results[i].Outcome = "planned"
		}
		return results, nil
	}
	fmt.Fprintf(out, "%s\n", p.Title)
	for _, n := range p.Notes {
		fmt.Fprintf(out, "  %s\n", n)
	}
	if len(p.Steps) == 0 {
		fmt.Fprintln(out, "  nothing to do")
	}
	for i, s := range p.Steps {
		if err := ctx.Err(); err != nil {
			return results, fmt.Errorf("interrupted before step %q: %w", s.Name, err)
		}
		fmt.Fprintf(out, "[%d/%d] %s: %s\n", i+1, len(p.Steps), s.Name, s.Detail)
		start := time.Now()
		var note string
		var err error
		if s.RunSteps != nil {
			note, results[i].Steps, err = s.RunSteps(ctx)
		} else {
			note, err = s.Run(ctx)
		}
		results[i].Duration = time.Since(start).Round(time.Millisecond).String()
		results[i].Note = note
		if err != nil {
			results[i].Outcome, results[i].Error = "failed", err.Error()
			fmt.Fprintf(out, "      failed after %s: %v\n", results[i].Duration, err)
			return results, fmt.Errorf("step %q: %w", s.Name, err)
		}
		results[i].Outcome = "done"
		if note != "" {
			fmt.Fprintf(out, "      done in %s: %s\n", results[i].Duration, note)
		} else {
			fmt.Fprintf(out, "      done in %s\n", results[i].Duration)
		}
	}
	return results, nil
}
