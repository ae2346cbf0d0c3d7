package workstation

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func etcdPodWith(node string, args ...string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "etcd-" + node, Namespace: "kube-system", Labels: map[string]string{"component": "etcd", "tier": "control-plane"}},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "etcd", Command: append([]string{"etcd"}, args...)}}},
	}
}

func TestQuotasFromEtcdPods(t *testing.T) {
	s := &Session{Clientset: fake.NewClientset(
		etcdPodWith("cp-a", "--quota-backend-bytes=50331648", "--data-dir=/var/lib/etcd"),
		etcdPodWith("cp-b", "--data-dir=/var/lib/etcd"), // etcd's default
		etcdPodWith("cp-c", "--quota-backend-bytes=0"),  // 0: etcd's default too
	)}
	q, err := s.quotas(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 1 || q["cp-a"] != 50331648 {
		t.Errorf("quotas %v, want only cp-a's 48 MiB", q)
	}
	s = &Session{Clientset: fake.NewClientset(etcdPodWith("cp-a", "--quota-backend-bytes=2G"))}
	if _, err := s.quotas(context.Background()); err == nil || !strings.Contains(err.Error(), `etcd pod etcd-cp-a has --quota-backend-bytes="2G", not a number of bytes`) {
		t.Errorf("a quota that is not a number: %v", err)
	}
}

func TestExplainWriteRefused(t *testing.T) {
	other := errors.New("pods is forbidden")
	if got := explainWriteRefused(other); got != other {
		t.Errorf("an unrelated error changed: %v", got)
	}
	nospace := errors.New(`creating pod kube-system/kubectl-etcd-h1: etcdserver: mvcc: database space exceeded`)
	got := explainWriteRefused(nospace)
	if !errors.Is(got, nospace) || !strings.Contains(got.Error(), "refusing to change anything under an active alarm (nothing was changed): etcd's NOSPACE alarm is raised") ||
		!strings.Contains(got.Error(), "`kubectl etcd defrag --all --compact`") {
		t.Errorf("NOSPACE: %v", got)
	}
	if got := explainWriteRefused(errors.New("etcdserver: corrupt cluster")); !strings.Contains(got.Error(), "CORRUPT alarm is raised") {
		t.Errorf("CORRUPT: %v", got)
	}
}
