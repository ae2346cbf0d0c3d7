package workstation

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/sealedca"
)

// ensureCA makes sure target holds the etcd CA before it joins: kubeadm
// join --control-plane brings it when certificates are uploaded, but hosts
// joined another way may lack it. The target's pod offers a one-time public
// key; a member host's pod seals the CA to it; the sealed bytes are relayed
// through this process's memory to the target, which alone can open them.
func (s *Session) ensureCA(ctx context.Context, target string, sources []string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	toTarget, toTargetW := io.Pipe()
	fromTarget, fromTargetW := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		err := s.Hosts.ReceiveCA(ctx, target, toTarget, fromTargetW, &stderr)
		fromTargetW.Close()
		done <- err
	}()
	// fail ends the receiving side and waits for it; done is read here and
	// nowhere else on a failure path (reading it twice hung a rerun for
	// good when the target's host pod failed).
	fail := func(err error) error {
		toTargetW.CloseWithError(err)
		cancel()
		rerr := <-done
		if rerr != nil && !errors.Is(rerr, context.Canceled) {
			err = errors.Join(err, rerr)
		}
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			err = errors.Join(err, errors.New(msg))
		}
		return err
	}
	sc := bufio.NewScanner(fromTarget)
	first, err := nextCAMessage(sc)
	if err != nil {
		return fail(fmt.Errorf("asking %s for its etcd CA: %w", target, err))
	}
	if first.Present {
		toTargetW.Close()
		return <-done
	}
	fmt.Fprintf(s.Out, "      %s has no etcd CA: sending it, sealed to a one-time key of %s, from a member host\n", target, target)
	var sealed *sealedca.Message
	var errs []error
	for _, src := range sources {
		m, err := s.Hosts.SendCA(ctx, src, first.PublicKey)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(m.Sealed) == 0 {
			errs = append(errs, fmt.Errorf("on %s: no sealed CA in the answer", src))
			continue
		}
		sealed = m
		break
	}
	if sealed == nil {
		return fail(fmt.Errorf("getting the etcd CA from a member host for %s: %w", target, errors.Join(errs...)))
	}
	line, _ := json.Marshal(sealedca.Message{Sealed: sealed.Sealed})
	if _, err := toTargetW.Write(append(line, '\n')); err != nil {
		return fail(fmt.Errorf("sending the sealed etcd CA to %s: %w", target, err))
	}
	toTargetW.Close()
	last, err := nextCAMessage(sc)
	io.Copy(io.Discard, fromTarget)
	if rerr := <-done; rerr != nil {
		return fmt.Errorf("installing the etcd CA on %s: %w", target, rerr)
	}
	if err != nil || !(last.Installed || last.Present) || last.Fingerprint != sealed.Fingerprint {
		return fmt.Errorf("installing the etcd CA on %s: no confirmation (%v)", target, err)
	}
	fmt.Fprintf(s.Out, "      etcd CA %s installed on %s\n", last.Fingerprint, target)
	return nil
}

func nextCAMessage(sc *bufio.Scanner) (sealedca.Message, error) {
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if !bytes.HasPrefix(line, []byte("{")) {
			continue
		}
		var m sealedca.Message
		if err := json.Unmarshal(line, &m); err == nil {
			return m, nil
		}
	}
	if err := sc.Err(); err != nil {
		return sealedca.Message{}, err
	}
	return sealedca.Message{}, io.ErrUnexpectedEOF
}
