package runlock

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

// newClientset is a fake clientset whose leases behave as the apiserver's
// in what the lock relies on and the fake leaves out: every write gives a
// new resourceVersion (a create, a new UID too), an update or a delete
// whose resourceVersion or UID is not the stored one is a conflict.
func newClientset() *fake.Clientset {
	cs := fake.NewClientset()
	rv := 0
	gvr := coordinationv1.SchemeGroupVersion.WithResource("leases")
	stored := func(ns, name string) *coordinationv1.Lease {
		o, err := cs.Tracker().Get(gvr, ns, name)
		if err != nil {
			return nil
		}
		return o.(*coordinationv1.Lease)
	}
	conflict := func(name string) error {
		return apierrors.NewConflict(gvr.GroupResource(), name, errors.New("the object has been modified"))
	}
	cs.PrependReactor("create", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		l := a.(k8stesting.CreateAction).GetObject().(*coordinationv1.Lease)
		rv++
		l.ResourceVersion, l.UID = strconv.Itoa(rv), types.UID("uid-"+strconv.Itoa(rv))
		return false, nil, nil
	})
	cs.PrependReactor("update", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		l := a.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease)
		if cur := stored(l.Namespace, l.Name); cur != nil && cur.ResourceVersion != l.ResourceVersion {
			return true, nil, conflict(l.Name)
		}
		rv++
		l.ResourceVersion = strconv.Itoa(rv)
		return false, nil, nil
	})
	cs.PrependReactor("delete", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		d := a.(k8stesting.DeleteAction)
		pre := d.GetDeleteOptions().Preconditions
		cur := stored(d.GetNamespace(), d.GetName())
		if pre == nil || cur == nil {
			return false, nil, nil
		}
		if (pre.UID != nil && *pre.UID != cur.UID) || (pre.ResourceVersion != nil && *pre.ResourceVersion != cur.ResourceVersion) {
			return true, nil, conflict(d.GetName())
		}
		return false, nil, nil
	})
	return cs
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func opts(cs kubernetes.Interface, c *clock, holder, host string, pid int) Options {
	return Options{Client: cs, Holder: holder, What: "scale h3", Host: host, PID: pid,
		Duration: 30 * time.Second, Slack: 5 * time.Second, Now: c.now, Alive: func(int) bool { return true }}
}

func holderOf(t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	l, err := cs.CoordinationV1().Leases(Namespace).Get(context.Background(), Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ptr.Deref(l.Spec.HolderIdentity, "")
}

func TestAcquireRefusesWhileHeld(t *testing.T) {
	ctx := context.Background()
	cs := newClientset()
	c := &clock{t: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	a, err := Acquire(ctx, opts(cs, c, "alice@ws1 pid 10", "ws1", 10))
	if err != nil {
		t.Fatal(err)
	}
	l := a.lease
	if ptr.Deref(l.Spec.HolderIdentity, "") != "alice@ws1 pid 10" || l.Annotations[WhatAnnotation] != "scale h3" || ptr.Deref(l.Spec.LeaseDurationSeconds, 0) != 30 {
		t.Fatalf("lease as created: %+v", l)
	}

	c.t = c.t.Add(20 * time.Second)
	_, err = Acquire(ctx, opts(cs, c, "bob@ws2 pid 20", "ws2", 20))
	var held *HeldError
	if !errors.As(err, &held) {
		t.Fatalf("want a HeldError, got %v", err)
	}
	for _, want := range []string{"alice@ws1 pid 10", "(scale h3)", "since 2026-12-06T12:00:00Z", "renewed 20s ago", "nothing was changed", "expires 35s after its last renewal", "kubectl -n kube-system delete lease kubectl-etcd"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if h := holderOf(t, cs); h != "alice@ws1 pid 10" {
		t.Errorf("a refused acquire changed the holder to %q", h)
	}

	// Renewed, it stays held past its first duration.
	if err := a.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(30 * time.Second) // 50 s after acquiring, 30 s after the renewal
	if _, err := Acquire(ctx, opts(cs, c, "bob@ws2 pid 20", "ws2", 20)); !errors.As(err, &held) {
		t.Fatalf("a renewed lease must stay held: %v", err)
	}

	// Released, it is free.
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := Acquire(ctx, opts(cs, c, "bob@ws2 pid 20", "ws2", 20))
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	if h := holderOf(t, cs); h != "bob@ws2 pid 20" || b == nil {
		t.Errorf("holder %q after bob's acquire", h)
	}
}

func TestStealAfterExpiry(t *testing.T) {
	ctx := context.Background()
	cs := newClientset()
	c := &clock{t: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	a, err := Acquire(ctx, opts(cs, c, "alice@ws1 pid 10", "ws1", 10))
	if err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(34 * time.Second) // within duration + slack
	if _, err := Acquire(ctx, opts(cs, c, "bob@ws2 pid 20", "ws2", 20)); err == nil {
		t.Fatal("taken within duration + slack")
	}
	c.t = c.t.Add(2 * time.Second)
	if _, err := Acquire(ctx, opts(cs, c, "bob@ws2 pid 20", "ws2", 20)); err != nil {
		t.Fatalf("an expired lease must be taken: %v", err)
	}
	// The first holder learns it lost the lock, and its release leaves
	// the new holder's lease alone.
	if err := a.Renew(ctx); !errors.Is(err, ErrLost) || !strings.Contains(err.Error(), "held by bob@ws2 pid 20") {
		t.Fatalf("renew after the steal: %v", err)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if h := holderOf(t, cs); h != "bob@ws2 pid 20" {
		t.Errorf("the old holder's release changed the holder to %q", h)
	}
}

func TestDeadHolderOnThisHost(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	for _, tc := range []struct {
		name      string
		host      string
		alive     bool
		wantTaken bool
	}{
		{"killed here", "ws1", false, true},
		{"alive here", "ws1", true, false},
		{"another host", "ws2", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := newClientset()
			if _, err := Acquire(ctx, opts(cs, c, "alice@ws1 pid 10", "ws1", 10)); err != nil {
				t.Fatal(err)
			}
			o := opts(cs, c, "alice@"+tc.host+" pid 11", tc.host, 11)
			var asked []int
			o.Alive = func(pid int) bool { asked = append(asked, pid); return tc.alive }
			_, err := Acquire(ctx, o)
			if taken := err == nil; taken != tc.wantTaken {
				t.Fatalf("taken %v, want %v (err %v)", taken, tc.wantTaken, err)
			}
			if tc.host == "ws1" && (len(asked) != 1 || asked[0] != 10) {
				t.Errorf("asked about pids %v, want [10]", asked)
			}
		})
	}
}

func TestHoldReleases(t *testing.T) {
	ctx := context.Background()
	cs := newClientset()
	release, err := Hold(ctx, Options{Client: cs, Holder: "alice@ws1 pid 10", What: "defrag"}, func(error) { t.Error("lost") })
	if err != nil {
		t.Fatal(err)
	}
	if h := holderOf(t, cs); h != "alice@ws1 pid 10" {
		t.Fatalf("holder %q", h)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoordinationV1().Leases(Namespace).Get(ctx, Name, metav1.GetOptions{}); err == nil {
		t.Error("the lease is still there after release")
	}
}

func TestKeepReportsLoss(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs := newClientset()
	o := Options{Client: cs, Holder: "alice@ws1 pid 10", Duration: 300 * time.Millisecond}
	l, err := Acquire(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	// Someone breaks the lock.
	if err := cs.CoordinationV1().Leases(Namespace).Delete(ctx, Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	lost := make(chan error, 1)
	go l.Keep(ctx, func(err error) { lost <- err })
	select {
	case err := <-lost:
		if !errors.Is(err, ErrLost) || !strings.Contains(err.Error(), "deleted") {
			t.Errorf("lost with %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Keep never reported the broken lock")
	}
}

// The usual run (no lease there, nobody else) costs one write to take the
// lock and one to free it, even after renewals: each is a round trip through
// the apiserver on every verb's way.
func TestUsualRunIsOneWriteEachWay(t *testing.T) {
	ctx := context.Background()
	cs := newClientset()
	c := &clock{t: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	l, err := Acquire(ctx, opts(cs, c, "alice@ws1 pid 10", "ws1", 10))
	if err != nil {
		t.Fatal(err)
	}
	verbs := func() string {
		var v []string
		for _, a := range cs.Actions() {
			v = append(v, a.GetVerb())
		}
		cs.ClearActions()
		return strings.Join(v, " ")
	}
	if got := verbs(); got != "create" {
		t.Errorf("acquire made %q, want one create", got)
	}
	if err := l.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	verbs()
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got := verbs(); got != "delete" {
		t.Errorf("release after a renewal made %q, want one delete", got)
	}
	if _, err := cs.CoordinationV1().Leases(Namespace).Get(ctx, Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("lease still there after release: %v", err)
	}
}

// A restore rolls the store back under its own run: the lease is gone, or
// is one an earlier run wrote before the snapshot. The restoring run writes
// it again and goes on; a run that does not roll back stops, and even a
// restoring run stops for a lease written after it took the lock.
func TestRollbackKeepsTheRestoringRun(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	leases := func(cs kubernetes.Interface) coordinationv1client.LeaseInterface {
		return cs.CoordinationV1().Leases(Namespace)
	}

	// The earlier run's lease, as the snapshot holds it.
	cs := newClientset()
	old, err := Acquire(ctx, opts(cs, c, "bob@ws2 pid 7", "ws2", 7))
	if err != nil {
		t.Fatal(err)
	}
	snapshot := old.lease.DeepCopy()
	if err := old.Release(ctx); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(10 * time.Minute)
	o := opts(cs, c, "alice@ws1 pid 10", "ws1", 10)
	o.RollsBack = true
	l, err := Acquire(ctx, o)
	if err != nil {
		t.Fatal(err)
	}

	// Rolled back to before any lease.
	if err := leases(cs).Delete(ctx, Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(10 * time.Second)
	if err := l.Renew(ctx); err != nil {
		t.Fatalf("renew after the lease was rolled away: %v", err)
	}
	if h := holderOf(t, cs); h != "alice@ws1 pid 10" {
		t.Errorf("holder after the rollback: %q", h)
	}

	// Rolled back to the earlier run's lease.
	if err := leases(cs).Delete(ctx, Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	snapshot.ResourceVersion, snapshot.UID = "", ""
	if _, err := leases(cs).Create(ctx, snapshot, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(10 * time.Second)
	if err := l.Renew(ctx); err != nil {
		t.Fatalf("renew after the store went back to an earlier run's lease: %v", err)
	}
	if h := holderOf(t, cs); h != "alice@ws1 pid 10" {
		t.Errorf("holder after the rollback to an earlier lease: %q", h)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := leases(cs).Get(ctx, Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the rewritten lease was not freed: %v", err)
	}

	// A lease another run wrote after this one took the lock is that run's.
	l, err = Acquire(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(2 * time.Minute) // this run could not renew: expired
	if _, err := Acquire(ctx, opts(cs, c, "carol@ws3 pid 3", "ws3", 3)); err != nil {
		t.Fatal(err)
	}
	if err := l.Renew(ctx); !errors.Is(err, ErrLost) || !strings.Contains(err.Error(), "carol@ws3") {
		t.Errorf("renew of a lock another run took since: %v, want it lost to carol", err)
	}

	// Without RollsBack a deleted lease is a broken lock.
	cs = newClientset()
	l, err = Acquire(ctx, opts(cs, c, "alice@ws1 pid 10", "ws1", 10))
	if err != nil {
		t.Fatal(err)
	}
	if err := leases(cs).Delete(ctx, Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := l.Renew(ctx); !errors.Is(err, ErrLost) {
		t.Errorf("renew of a deleted lease without RollsBack: %v, want ErrLost", err)
	}
}
