package podexec

import (
	"context"
	"testing"
)

// The exec itself is exercised on real beds (test/e2e: status); here only
// what fails before any request.
func TestRunNeedsACommand(t *testing.T) {
	_, err := (&Runner{}).Run(context.Background(), Target{Namespace: "kube-system", Pod: "etcd-h1", Container: "etcd"})
	if err == nil || err.Error() != "podexec: no command given" {
		t.Errorf("err %v", err)
	}
	if s := (Target{Namespace: "kube-system", Pod: "etcd-h1", Container: "etcd"}).String(); s != "kube-system/etcd-h1 (container etcd)" {
		t.Errorf("String() = %q", s)
	}
}
