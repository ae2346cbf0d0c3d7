package version

import (
	"runtime"
	"testing"
)

func TestGetReportsRuntime(t *testing.T) {
	got := Get()
	if got.GoVersion != runtime.Version() {
		t.Errorf("GoVersion = %q, want %q", got.GoVersion, runtime.Version())
	}
	if want := runtime.GOOS + "/" + runtime.GOARCH; got.Platform != want {
		t.Errorf("Platform = %q, want %q", got.Platform, want)
	}
	if got.Version != Version || got.GitCommit != GitCommit {
		t.Errorf("Get() = %+v, want Version %q and GitCommit %q", got, Version, GitCommit)
	}
}
