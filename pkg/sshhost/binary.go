package sshhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
)

// sumScript prints the sha256 of the file $1, nothing when there is none.
const sumScript = `if [ -e "$1" ]; then sha256sum < "$1"; fi`

// uploadScript writes stdin to the file $1, atomically: a half-written
// binary where an operator expects kubectl-etcd in a bad hour would be
// worse than none. It checks the copy against the sha256 $2 before
// renaming, so a connection that broke mid-copy leaves nothing behind.
const uploadScript = `set -e
dir=$(dirname "$1")
mkdir -p -m 0755 "$dir"
tmp=$(mktemp "$dir/.kubectl-etcd.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
sum=$(sha256sum < "$tmp")
if [ "${sum%% *}" != "$2" ]; then echo "the copy has sha256 ${sum%% *}, not $2: incomplete" >&2; exit 1; fi
chmod 0755 "$tmp"
sync "$tmp" 2>/dev/null || true
mv -f "$tmp" "$1"
sync "$dir" 2>/dev/null || true
`

// ensureBinary puts LocalBinary at RemoteBinary on h unless a copy with its
// sha256 is there already. h.mu is held.
func (t *Transport) ensureBinary(ctx context.Context, node string, h *host) error {
	want, err := t.localSum()
	if err != nil {
		return err
	}
	dst := t.o.RemoteBinary
	out, err := t.outputIn(ctx, h.client, nil, t.asRoot(h, "sh", "-c", sumScript, "sh", dst))
	if err != nil {
		return fmt.Errorf("reading the sha256 of %s on host %s (%s): %w", dst, node, h.to, err)
	}
	if have, _, _ := strings.Cut(strings.TrimSpace(out), " "); have == want {
		return nil
	}
	f, err := os.Open(t.o.LocalBinary)
	if err != nil {
		return fmt.Errorf("copying kubectl-etcd to host %s: %w", node, err)
	}
	defer f.Close()
	if _, err := t.outputIn(ctx, h.client, f, t.asRoot(h, "sh", "-c", uploadScript, "sh", dst, want)); err != nil {
		return fmt.Errorf("copying %s to %s on host %s (%s): %w", t.o.LocalBinary, dst, node, h.to, err)
	}
	fmt.Fprintf(t.log, "      %s: copied kubectl-etcd (sha256 %s…) to %s\n", node, want[:8], dst)
	return nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading the binary to copy to the hosts: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading the binary to copy to the hosts: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
