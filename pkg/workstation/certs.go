package workstation

import (
	"context"
	"fmt"
	"sync"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
)

// CertsCheck is `certs check` from the workstation: every control-plane
// host's etcd certificates, read on the host by a host pod (public parts
// only). A host that cannot run a pod is a report with Error, naming the
// host-local command to run there instead.
type CertsCheck struct {
	Hosts []HostCerts `json:"hosts"`
}

// HostCerts is one host's report, or why there is none.
type HostCerts struct {
	Node  string               `json:"node"`
	Certs []hostapi.CertReport `json:"certificates,omitempty"`
	Error string               `json:"error,omitempty"`
}

// CheckCerts reads every control-plane host's etcd certificates, in parallel.
func (s *Session) CheckCerts(ctx context.Context) (*CertsCheck, error) {
	nodes, err := s.ControlPlaneNodes(ctx)
	if err != nil {
		return nil, err
	}
	return s.checkCertsOn(ctx, nodes), nil
}

// checkCertsOn reads the etcd certificates of nodes, in parallel.
func (s *Session) checkCertsOn(ctx context.Context, nodes []Node) *CertsCheck {
	out := &CertsCheck{Hosts: make([]HostCerts, len(nodes))}
	var wg sync.WaitGroup
	for i, n := range nodes {
		out.Hosts[i].Node = n.Name
		if !s.reaches(n) {
			out.Hosts[i].Error = fmt.Sprintf("%s is NotReady and cannot run a host pod: run `kubectl-etcd certs check --local` on it as root", n.Name)
			continue
		}
		wg.Go(func() {
			r, err := s.Hosts.CertsCheck(ctx, n.Name)
			if err != nil {
				out.Hosts[i].Error = fmt.Sprintf("reading the certificates of %s: %v (or run `kubectl-etcd certs check --local` on it as root)", n.Name, err)
				return
			}
			out.Hosts[i].Certs = r.Certs
		})
	}
	wg.Wait()
	return out
}
