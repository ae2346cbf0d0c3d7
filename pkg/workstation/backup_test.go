package workstation

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/backup"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/runlock"
)

// heldLease is the run lock as another, live run on another workstation
// holds it, renewed a moment ago.
func heldLease() *coordinationv1.Lease {
	now := metav1.NewMicroTime(time.Now())
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: runlock.Name, Namespace: runlock.Namespace,
			Annotations: map[string]string{runlock.WhatAnnotation: "scale: h3"}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("bob@ws2 pid 7"), LeaseDurationSeconds: ptr.To(int32(60)),
			AcquireTime: &now, RenewTime: &now},
	}
}

// The backup CronJob is cluster state like any other: schedule and
// unschedule take the run lock, are refused while another run holds it
// (naming the holder) and then change nothing.
func TestBackupScheduleTakesTheRunLock(t *testing.T) {
	ctx := context.Background()
	sched := backup.Schedule{Every: "1h", Keep: 24, Image: "ghcr.io/kubectl-etcd/kubectl-etcd:v0.1.0"}
	objs := h1.objects()
	cs := fake.NewClientset(append(objs, heldLease())...)
	var warn bytes.Buffer
	s := &Session{Clientset: cs, Out: &warn}
	cronJob := func() error {
		_, err := cs.BatchV1().CronJobs(backup.CronJobNamespace).Get(ctx, backup.CronJobName, metav1.GetOptions{})
		return err
	}

	if _, err := s.ScheduleBackups(ctx, sched, false); err == nil || !strings.Contains(err.Error(), "bob@ws2 pid 7") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("schedule under another run's lock: %v, want a refusal naming bob@ws2 pid 7", err)
	}
	if err := cronJob(); !apierrors.IsNotFound(err) {
		t.Fatalf("the refused schedule left a CronJob (or the read failed): %v", err)
	}
	// A dry run takes no lock: it writes nothing.
	if res, err := s.ScheduleBackups(ctx, sched, true); err != nil || res.Action != "would create" {
		t.Fatalf("dry run under the lock: %+v, %v", res, err)
	}

	// Free: it schedules, and gives the lock back.
	if err := cs.CoordinationV1().Leases(runlock.Namespace).Delete(ctx, runlock.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if res, err := s.ScheduleBackups(ctx, sched, false); err != nil || res.Action != "created" {
		t.Fatalf("schedule: %+v, %v", res, err)
	}
	if err := cronJob(); err != nil {
		t.Fatalf("no CronJob after schedule: %v", err)
	}
	if _, err := cs.CoordinationV1().Leases(runlock.Namespace).Get(ctx, runlock.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the lock was not given back after schedule: %v", err)
	}

	// Held again: unschedule is refused and the CronJob stays.
	if _, err := cs.CoordinationV1().Leases(runlock.Namespace).Create(ctx, heldLease(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UnscheduleBackups(ctx, false); err == nil || !strings.Contains(err.Error(), "bob@ws2 pid 7") {
		t.Fatalf("unschedule under another run's lock: %v", err)
	}
	if err := cronJob(); err != nil {
		t.Fatalf("the refused unschedule removed the CronJob: %v", err)
	}
}
