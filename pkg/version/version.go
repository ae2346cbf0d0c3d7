// Package version reports which build of kubectl-etcd is running, so that
// bug reports and support sessions can tie output to an exact commit.
package version

import (
	"fmt"
	"runtime"
)

// Version and GitCommit are set at link time, e.g.
//
//	go build -ldflags "-X github.com/kubectl-etcd/kubectl-etcd/pkg/version.Version=v0.1.0 \
//	  -X github.com/kubectl-etcd/kubectl-etcd/pkg/version.GitCommit=$(git rev-parse HEAD)"
//
// They are variables (not constants) only because -X can set nothing else;
// nothing in the program writes them. The defaults make an unstamped
// development build obvious instead of looking like a release.
var (
	Version   = "v0.0.0-dev"
	GitCommit = "unknown"
	// ImageDigest is the digest ("sha256:...") of the released image of
	// this version (its multi-arch index), stamped into the plugin's
	// release archives by `make release` after `make image` built it, so
	// host pods run exactly that image, not whatever its tag names when a
	// node pulls. Empty in development builds and in the image's own
	// binaries (which cannot contain their image's digest).
	ImageDigest = ""
)

// Info describes the running binary. The JSON tags are part of the
// `version -o json|yaml` output, which scripts may parse.
type Info struct {
	Version   string `json:"version"`
	GitCommit string `json:"gitCommit"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns the version information of the running binary. The Go
// version and platform come from the runtime rather than from ldflags so
// that they cannot disagree with what was actually built.
func Get() Info {
	return Info{
		Version:   Version,
		GitCommit: GitCommit,
		GoVersion: runtime.Version(),
		Platform:  fmt.Sprintf("%s/%s", runtime.GOOS, runtime.GOARCH),
	}
}
