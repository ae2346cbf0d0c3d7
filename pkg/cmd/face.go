package cmd

import (
	"errors"
	"fmt"
	"os"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// face is which side of a verb with two runs: the workstation's, through
// the apiserver of the kubeconfig, or the host-local one, as root on a
// control-plane host, without the apiserver.
type face int

const (
	workstationFace face = iota
	hostLocalFace
)

func (f face) String() string {
	if f == hostLocalFace {
		return "host-local"
	}
	return "workstation"
}

// The verbs with both faces.
const (
	verbStatus       = "status"
	verbSnapshotSave = "snapshot save"
	verbBackupList   = "backup list"
	verbRecover      = "recover"
	verbRestore      = "restore"
	verbDefrag       = "defrag"
	verbAlarm        = "alarm"
	verbCerts        = "certs"
	verbRemove       = "remove"
	verbReconfigure  = "reconfigure"
	verbUpgrade      = "upgrade"
	verbDoctor       = "doctor"
)

// errRestoreLocalAndNode is restore given both faces at once.
var errRestoreLocalAndNode = errors.New("restore --local restores on this host and --node restores on NODE from the workstation: give one, not both")

// chooseFace decides which face of verb runs; it is the one place that
// does, called from each two-faced verb's Complete. --local always selects
// the host-local face. Without it each verb keeps the default it always had,
// so no runbook command changes. node is restore's --node; onControlPlaneHost
// is asked only by recover without --local.
func chooseFace(verb string, local bool, node string, onControlPlaneHost func() bool) (face, error) {
	switch verb {
	case verbStatus, verbSnapshotSave, verbBackupList, verbDefrag, verbAlarm, verbCerts, verbRemove, verbReconfigure, verbUpgrade, verbDoctor:
		// The workstation's by default: these are everyday verbs run
		// through the apiserver, and a host with an admin kubeconfig is a
		// workstation too. The host face is for when the apiserver is down,
		// and is asked for.
		if local {
			return hostLocalFace, nil
		}
		return workstationFace, nil
	case verbRecover:
		// Host-local when run on a control-plane host: after a quorum loss
		// the apiserver is down with etcd, so only the host face can act,
		// and the runbooks run "kubectl-etcd recover" as root on the
		// survivor without --local. Elsewhere it is the workstation's, which
		// can only check the apiserver and say what to run where. --local
		// forces the host face where the check says otherwise (e.g. the
		// host lost /etc/kubernetes/manifests).
		if local || onControlPlaneHost() {
			return hostLocalFace, nil
		}
		return workstationFace, nil
	case verbRestore:
		// Host-local unless --node: "kubectl-etcd restore FILE" after total
		// loss (no apiserver to go through) has always run on the host, and
		// so does the detached restore that "restore-node start" launches
		// without --local. --node names the node the workstation restores
		// on, so it can only mean the workstation's face.
		if node == "" {
			return hostLocalFace, nil
		}
		if local {
			return workstationFace, errRestoreLocalAndNode
		}
		return workstationFace, nil
	}
	return workstationFace, fmt.Errorf("%s has no host-local face", verb)
}

// isControlPlaneHost says whether root is a kubeadm control-plane host's /:
// it has /etc/kubernetes/manifests.
func isControlPlaneHost(root string) bool {
	h := staticpod.NewHost(root)
	_, err := os.Stat(h.Path(h.ManifestDir()))
	return err == nil
}
