package plan

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestDryRunRunsNothing(t *testing.T) {
	ran := false
	var p Plan
	p.Title = "join h2"
	p.Add("add learner", "add h2 as a learner", func(context.Context) (string, error) { ran = true; return "", nil })
	var out bytes.Buffer
	res, err := p.Execute(context.Background(), &out, true)
	if err != nil || ran {
		t.Fatalf("dry run ran a step (ran=%v, err=%v)", ran, err)
	}
	if res[0].Outcome != "planned" || !strings.Contains(out.String(), "1. add learner: add h2 as a learner") {
		t.Errorf("plan not printed: %q %+v", out.String(), res)
	}
}

func TestStopsAtFirstFailure(t *testing.T) {
	var p Plan
	var order []string
	p.Add("a", "first", func(context.Context) (string, error) { order = append(order, "a"); return "ok", nil })
	p.Add("b", "second", func(context.Context) (string, error) { order = append(order, "b"); return "", errors.New("boom") })
	p.Add("c", "third", func(context.Context) (string, error) { order = append(order, "c"); return "", nil })
	p.Finally(func() { order = append(order, "f1") })
	p.Finally(func() { order = append(order, "f2") })
	var out bytes.Buffer
	res, err := p.Execute(context.Background(), &out, false)
	if err == nil || !strings.Contains(err.Error(), `step "b": boom`) {
		t.Fatalf("want the failing step named, got %v", err)
	}
	if strings.Join(order, " ") != "a b f2 f1" {
		t.Errorf("ran %v, want a then b only, then the finally funcs in reverse", order)
	}
	if res[0].Outcome != "done" || res[1].Outcome != "failed" || res[2].Outcome != "not-run" {
		t.Errorf("outcomes %+v", res)
	}
	if !strings.Contains(out.String(), "[2/3] b: second") || !strings.Contains(out.String(), "failed after") {
		t.Errorf("progress lines missing: %q", out.String())
	}
}

func TestCancelledContextStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var p Plan
	p.Add("a", "x", func(context.Context) (string, error) { t.Error("ran after cancel"); return "", nil })
	if _, err := p.Execute(ctx, nil, false); err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("got %v", err)
	}
}

func TestSubStepsReportedAlsoOnFailure(t *testing.T) {
	var p Plan
	p.AddSteps("join h2", "on h2: kubectl-etcd join", func(context.Context) (string, []StepResult, error) {
		return "", []StepResult{{Name: "add learner", Outcome: "done"}, {Name: "promote", Outcome: "failed", Error: "not caught up"}}, errors.New("promote: not caught up")
	})
	p.Add("after", "never", func(context.Context) (string, error) { t.Error("ran after a failed step"); return "", nil })
	res, err := p.Execute(context.Background(), nil, false)
	if err == nil || !strings.Contains(err.Error(), `step "join h2": promote: not caught up`) {
		t.Fatalf("got %v", err)
	}
	if res[0].Outcome != "failed" || len(res[0].Steps) != 2 || res[0].Steps[1].Outcome != "failed" || res[1].Outcome != "not-run" {
		t.Errorf("results %+v", res)
	}
}
