// Package runlock keeps two kubectl-etcd runs that change a cluster apart:
// a coordination.k8s.io Lease, kube-system/kubectl-etcd, names who holds
// the cluster and what they are doing, and is renewed while they run. A
// second run is refused with the holder's name. A run whose process died
// (SIGKILL, a laptop closed) stops renewing: its lease expires by itself,
// or `kubectl -n kube-system delete lease kubectl-etcd` breaks it at once.
//
// The lock is advisory, as every lock on a cluster is: it keeps kubectl-etcd
// runs apart, not an operator with etcdctl.
package runlock

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

const (
	// Namespace and Name are the Lease's.
	Namespace = metav1.NamespaceSystem
	Name      = "kubectl-etcd"
	// WhatAnnotation says what the holder is doing; HostAnnotation and
	// PIDAnnotation where it runs, so a rerun on the same workstation after
	// the holder was killed takes the lock at once.
	WhatAnnotation = "kubectl-etcd.io/what"
	HostAnnotation = "kubectl-etcd.io/host"
	PIDAnnotation  = "kubectl-etcd.io/pid"
	// DefaultDuration is how long a lease lasts without renewal. Long
	// enough to ride out an apiserver restart (a scale re-points them),
	// short enough that a killed run's lock frees itself soon.
	DefaultDuration = 60 * time.Second
	// DefaultSlack is added to a lease's duration before another run calls
	// it expired: the holder's clock wrote its renew time, ours reads it.
	DefaultSlack = 10 * time.Second
)

// BreakCommand is how an operator breaks a stale lock.
var BreakCommand = fmt.Sprintf("kubectl -n %s delete lease %s", Namespace, Name)

// Options say who takes the lock and for what.
type Options struct {
	Client kubernetes.Interface
	// Holder names the run: user, workstation and process.
	Holder string
	// What the run does, for the one it keeps waiting.
	What string
	// Host and PID are where the run is: a holder on the same host whose
	// process is gone (Alive says so) holds nothing. Optional.
	Host string
	PID  int
	// Alive says whether process pid runs on this host; processAlive when
	// nil.
	Alive func(pid int) bool
	// Duration and Slack default to DefaultDuration and DefaultSlack.
	Duration time.Duration
	Slack    time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// RollsBack is for a run that rolls the cluster's store back to a
	// snapshot (restore): the apiserver's objects go back with it, and
	// the lease with them, to absent or to a lease of a run from before
	// this one. Neither is another run taking the lock, so renewing writes
	// the lease again instead of stopping the run half-way through its
	// restore.
	RollsBack bool
}

func (o Options) withDefaults() Options {
	if o.Duration <= 0 {
		o.Duration = DefaultDuration
	}
	if o.Slack <= 0 {
		o.Slack = DefaultSlack
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Alive == nil {
		o.Alive = processAlive
	}
	return o
}

// HeldError is the lock held by another run.
type HeldError struct {
	Holder, What    string
	Since, Renewed  time.Time
	Duration, Slack time.Duration
	now             time.Time
}

func (e *HeldError) Error() string {
	what := ""
	if e.What != "" {
		what = fmt.Sprintf(" (%s)", e.What)
	}
	return fmt.Sprintf("another kubectl-etcd run holds this cluster's run lock: %s%s, since %s, renewed %s ago; nothing was changed. "+
		"Wait for it to end. If that run is gone (killed), its lock expires %s after its last renewal, or break it now with `%s`",
		e.Holder, what, e.Since.UTC().Format(time.RFC3339), e.now.Sub(e.Renewed).Round(time.Second), (e.Duration + e.Slack).Round(time.Second), BreakCommand)
}

// Lock is a held lock.
type Lock struct {
	o     Options
	lease *coordinationv1.Lease // as this run last wrote it
}

// Acquire takes the lock: it creates the lease, or takes it over when it
// is free (no holder) or expired. A lock held by another run is a
// *HeldError; any other error means the lock could not be read or
// written (the apiserver is down, or cannot write: etcd's NOSPACE).
func Acquire(ctx context.Context, o Options) (*Lock, error) {
	o = o.withDefaults()
	if o.Client == nil || o.Holder == "" {
		return nil, errors.New("runlock: a client and a holder are required")
	}
	leases := o.Client.CoordinationV1().Leases(Namespace)
	// A run that ends deletes the lease, so the lease is usually absent:
	// create it at once, one round trip, and read it only when it exists.
	l, err := leases.Create(ctx, o.lease(nil, metav1.NewMicroTime(o.Now())), metav1.CreateOptions{})
	if err == nil {
		return &Lock{o: o, lease: l}, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating the run lock (lease %s/%s): %w", Namespace, Name, err)
	}
	// A conflict means another run wrote the lease between our read and
	// our write: read it again and decide again.
	for range 5 {
		now := metav1.NewMicroTime(o.Now())
		cur, err := leases.Get(ctx, Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			l, err := leases.Create(ctx, o.lease(nil, now), metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("creating the run lock (lease %s/%s): %w", Namespace, Name, err)
			}
			return &Lock{o: o, lease: l}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading the run lock (lease %s/%s): %w", Namespace, Name, err)
		}
		if h := ptr.Deref(cur.Spec.HolderIdentity, ""); h != "" && h != o.Holder && !expired(cur, o) && !goneHere(cur, o) {
			return nil, heldError(cur, o)
		}
		l, err := leases.Update(ctx, o.lease(cur, now), metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("taking the run lock (lease %s/%s): %w", Namespace, Name, err)
		}
		return &Lock{o: o, lease: l}, nil
	}
	return nil, fmt.Errorf("taking the run lock (lease %s/%s): it kept changing under us", Namespace, Name)
}

// lease is cur (nil: a new one) held by o's holder from now.
func (o Options) lease(cur *coordinationv1.Lease, now metav1.MicroTime) *coordinationv1.Lease {
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: Name, Namespace: Namespace}}
	if cur != nil {
		l = cur.DeepCopy()
	}
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[WhatAnnotation] = o.What
	l.Annotations[HostAnnotation] = o.Host
	l.Annotations[PIDAnnotation] = strconv.Itoa(o.PID)
	l.Spec.HolderIdentity = ptr.To(o.Holder)
	l.Spec.LeaseDurationSeconds = ptr.To(int32(o.Duration / time.Second))
	l.Spec.AcquireTime = &now
	l.Spec.RenewTime = &now
	if cur != nil {
		l.Spec.LeaseTransitions = ptr.To(ptr.Deref(cur.Spec.LeaseTransitions, 0) + 1)
	}
	return l
}

// expired: the holder has not renewed within its duration and our slack.
func expired(l *coordinationv1.Lease, o Options) bool {
	renewed := l.Spec.RenewTime
	if renewed == nil {
		renewed = l.Spec.AcquireTime
	}
	if renewed == nil {
		return true
	}
	d := o.Duration
	if l.Spec.LeaseDurationSeconds != nil {
		d = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	return o.Now().After(renewed.Add(d + o.Slack))
}

// goneHere: the holder ran on this host, as another process, and that
// process is gone (killed: a run that ends releases the lock).
func goneHere(l *coordinationv1.Lease, o Options) bool {
	if o.Host == "" || l.Annotations[HostAnnotation] != o.Host {
		return false
	}
	pid, err := strconv.Atoi(l.Annotations[PIDAnnotation])
	if err != nil || pid <= 0 || pid == o.PID {
		return false
	}
	return !o.Alive(pid)
}

func heldError(l *coordinationv1.Lease, o Options) *HeldError {
	e := &HeldError{Holder: ptr.Deref(l.Spec.HolderIdentity, ""), What: l.Annotations[WhatAnnotation], Duration: o.Duration, Slack: o.Slack, now: o.Now()}
	if l.Spec.LeaseDurationSeconds != nil {
		e.Duration = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	if l.Spec.AcquireTime != nil {
		e.Since = l.Spec.AcquireTime.Time
	}
	if l.Spec.RenewTime != nil {
		e.Renewed = l.Spec.RenewTime.Time
	}
	return e
}

// ErrLost is the lock found held by another run while this one held it:
// someone broke it, or it expired while this run could not renew it.
var ErrLost = errors.New("the run lock was taken from this run")

// Renew renews the lease once. It returns an error wrapping ErrLost when
// another run holds it now, or it was deleted.
func (l *Lock) Renew(ctx context.Context) error {
	leases := l.o.Client.CoordinationV1().Leases(Namespace)
	cur, err := leases.Get(ctx, Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && l.o.RollsBack {
		// The store went back to before this run took the lock.
		created, err := leases.Create(ctx, l.o.lease(nil, metav1.NewMicroTime(l.o.Now())), metav1.CreateOptions{})
		if err != nil {
			// AlreadyExists: someone wrote it since; the next renewal sees who.
			return fmt.Errorf("writing the run lock again after the rollback: %w", err)
		}
		l.lease = created
		return nil
	}
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%w: the lease was deleted (`%s`)", ErrLost, BreakCommand)
	}
	if err != nil {
		return fmt.Errorf("renewing the run lock: %w", err)
	}
	if h := ptr.Deref(cur.Spec.HolderIdentity, ""); h != l.o.Holder {
		if !l.o.RollsBack || !l.fromBefore(cur) {
			return fmt.Errorf("%w: it is held by %s now", ErrLost, h)
		}
		// A lease from the snapshot, written before this run took the
		// lock: only a rollback brings such a lease back.
		cur = l.o.lease(cur, metav1.NewMicroTime(l.o.Now()))
	}
	// cur's resourceVersion makes the update fail on a lease taken over
	// since the read; the next renewal then sees by whom.
	now := metav1.NewMicroTime(l.o.Now())
	cur.Spec.RenewTime = &now
	renewed, err := leases.Update(ctx, cur, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("renewing the run lock: %w", err)
	}
	l.lease = renewed
	return nil
}

// fromBefore: cur was last written before this run took the lock (its
// renewal, or its acquisition, is older than ours).
func (l *Lock) fromBefore(cur *coordinationv1.Lease) bool {
	written := cur.Spec.RenewTime
	if written == nil {
		written = cur.Spec.AcquireTime
	}
	return written == nil || written.Before(l.lease.Spec.AcquireTime)
}

// Keep renews the lease every third of its duration until ctx ends. When
// it finds the lock lost it calls lost once and stops; other failures
// (the apiserver restarting) are retried at the next tick.
func (l *Lock) Keep(ctx context.Context, lost func(error)) {
	t := time.NewTicker(l.o.Duration / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, l.o.Duration/3)
		err := l.Renew(rctx)
		cancel()
		if errors.Is(err, ErrLost) {
			lost(err)
			return
		}
	}
}

// Release frees the lock: it deletes the lease if this run still holds it
// (a lease taken over by another run is left alone).
func (l *Lock) Release(ctx context.Context) error {
	leases := l.o.Client.CoordinationV1().Leases(Namespace)
	// First as this run last wrote it: the preconditions make the delete
	// miss a lease written since by anyone else, and one round trip
	// frees it in the usual case.
	err := leases.Delete(ctx, Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &l.lease.UID, ResourceVersion: &l.lease.ResourceVersion}})
	if err == nil || apierrors.IsNotFound(err) {
		return nil
	}
	if !apierrors.IsConflict(err) {
		return fmt.Errorf("releasing the run lock (lease %s/%s): %w", Namespace, Name, err)
	}
	cur, err := leases.Get(ctx, Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("releasing the run lock (lease %s/%s): %w", Namespace, Name, err)
	}
	if ptr.Deref(cur.Spec.HolderIdentity, "") != l.o.Holder {
		return nil
	}
	// The preconditions make the delete miss a lease taken over since
	// the read.
	err = leases.Delete(ctx, Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &cur.UID, ResourceVersion: &cur.ResourceVersion}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("releasing the run lock (lease %s/%s): %w", Namespace, Name, err)
	}
	return nil
}

// Hold takes the lock and renews it until release is called; lost is
// called once if the lock is taken from the run meanwhile. release stops
// the renewals, then frees the lock, on its own short deadline so that a
// cancelled run still frees it.
func Hold(ctx context.Context, o Options, lost func(error)) (release func() error, err error) {
	l, err := Acquire(ctx, o)
	if err != nil {
		return nil, err
	}
	kctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Keep(kctx, lost)
	}()
	return func() error {
		stop()
		<-done
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return l.Release(rctx)
	}, nil
}
