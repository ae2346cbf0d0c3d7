package hostapi_test

import (
	"encoding/json"
	"testing"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcddata"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
)

// HostState reads the data dir's identity as hostlocal's State writes it
// (an etcddata.State without JSON tags: its Go field names).
func TestHostStateReadsDataDirFacts(t *testing.T) {
	written, err := json.Marshal(struct {
		Node         string          `json:"node"`
		EtcdRunning  bool            `json:"etcdRunning"`
		DataDirFacts *etcddata.State `json:"dataDirFacts,omitempty"`
	}{Node: "h5", DataDirFacts: &etcddata.State{HasData: true, MemberID: 9, ClusterID: 0xf00, Revision: 12, DBSize: 4096}})
	if err != nil {
		t.Fatal(err)
	}
	var hs hostapi.HostState
	if err := json.Unmarshal(written, &hs); err != nil {
		t.Fatal(err)
	}
	if hs.Node != "h5" || hs.DataDirFacts == nil || *hs.DataDirFacts != (hostapi.DataDirFacts{HasData: true, MemberID: 9, ClusterID: 0xf00, Revision: 12}) {
		t.Errorf("read %+v from %s", hs, written)
	}
}
