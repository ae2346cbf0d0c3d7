# kubectl-etcd. Targets that build or use the test bed must run as root.
SHELL := /bin/bash
GO ?= go
PKG := github.com/kubectl-etcd/kubectl-etcd
VERSION ?= v0.0.0-dev
LDFLAGS := -s -w -X $(PKG)/pkg/version.Version=$(VERSION) -X $(PKG)/pkg/version.GitCommit=$(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BED ?= ketcd
HOSTS ?= 3
SHAPE ?=
HOST ?= h1
# IPV6=1: an IPv6 single-stack bed; DOMAIN=cp.example.internal: dotted node names (h1.DOMAIN)
IPV6 ?=
DOMAIN ?=
BEDFLAGS = $(if $(IPV6),--ipv6) $(if $(DOMAIN),--domain $(DOMAIN))
TESTBED := $(GO) run ./cmd/testbed --name $(BED)
# Every build here is static and path-free, as the bed's and the release's
# binaries must be: one set of flags means one compile of the dependencies
# (kubeadm's tree is most of it) shared by vet, the unit and e2e tests, the
# bed and dist's linux/amd64, instead of one per flag set on a cold machine.
export CGO_ENABLED := 0
export GOFLAGS := $(shell $(GO) env GOFLAGS) -trimpath
BEDDIR := /var/tmp/kubectl-etcd-testbed/$(BED)

.PHONY: all build test unit e2e lint components bed-up bed-down bed-status bed-shell demo bench-bed bench-hostlocal clean
.PHONY: dist krew-check image release

all: build

## build: the kubectl-etcd binary (static) into bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/kubectl-etcd ./cmd/kubectl-etcd

## test: everything CI runs: lint; unit tests, with the test bed's components built meanwhile
## at nice 19; the end-to-end tests on real test beds (root), with the release archives
## compiled meanwhile at nice 19; krew-check on them
test: lint
	hack/unit-with-prepare.sh $(MAKE)
	hack/e2e-with-dist.sh $(MAKE) $(VERSION)

## unit: fast tests, no test bed
unit:
	$(GO) test -count=1 ./...

## e2e: end-to-end tests on real kubeadm test beds (root; builds components on first use):
## every story of every issue, what CI runs; the log ends with each failed test's last lines
e2e:
	set -o pipefail; KETCD_HOLD_BED_LOCK=1 $(GO) test -count=1 -tags e2e -timeout 70m -json ./test/e2e/ 2>&1 | $(GO) run ./hack/testsummary -src test/e2e

## lint: gofmt, go mod tidy (-diff: changes nothing) and go vet
lint:
	@out="$$(gofmt -l cmd pkg hack test internal)"; if [[ -n "$$out" ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@if ! diff="$$($(GO) mod tidy -diff 2>&1)"; then echo "go.mod/go.sum are not tidy (run go mod tidy):"; echo "$$diff"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/e2e/

## components: build (or find cached) etcd and the Kubernetes components
components:
	hack/build-components.sh all

## bed-up: a test bed with HOSTS control-plane hosts (or SHAPE=init,control-plane-no-etcd,worker,...);
## IPV6=1 DOMAIN=cp.example.internal for IPv6 only and dotted node names
bed-up:
	$(TESTBED) up --hosts $(HOSTS) $(if $(SHAPE),--shape $(SHAPE)) $(BEDFLAGS)

## bed-down: tear the test bed down, leaving nothing behind
bed-down:
	$(TESTBED) down

bed-status:
	$(TESTBED) status

## bed-shell: a shell inside a host of the bed (HOST=h2)
bed-shell:
	$(TESTBED) exec $(HOST) -- bash

## demo: the local demo cluster (kubeadm control plane on h1, h2 and h3 control-plane hosts
## without etcd), then what a new user runs first: status, scale --replicas 3, status
## (make demo IPV6=1 DOMAIN=cp.example.internal: the same, IPv6 only, dotted node names)
demo:
	$(TESTBED) up --shape init,control-plane-no-etcd,control-plane-no-etcd $(BEDFLAGS)
	@K="$(BEDDIR)/bin/kubectl --kubeconfig $(BEDDIR)/kubeconfig"; E="$(BEDDIR)/bin/kubectl-etcd --kubeconfig $(BEDDIR)/kubeconfig"; \
	echo; echo '$$ kubectl get nodes,pods -A -o wide'; $$K get nodes,pods -A -o wide; \
	echo; echo '$$ kubectl etcd status'; $$E status; \
	echo; echo '$$ kubectl etcd scale --replicas 3'; $$E scale --replicas 3; \
	echo; echo '$$ kubectl etcd status'; $$E status; \
	echo; echo "export KUBECONFIG=$(BEDDIR)/kubeconfig   # then: kubectl etcd status; tear down with: make bed-down"

## bench-bed: time a 3-host bed up/down and measure its memory
bench-bed:
	hack/bench-bed.sh 3

## bench-hostlocal: time each host-local verb on a real bed
bench-hostlocal:
	hack/bench-hostlocal.sh 3

clean:
	rm -rf bin dist

## dist: release archives for linux/darwin/windows x amd64/arm64, checksums and the
## filled krew manifest dist/plugins.yaml (VERSION=vX.Y.Z)
dist:
	$(GO) run ./hack/dist --version $(VERSION) --ldflags "$(LDFLAGS)" --out dist

## krew-check: make dist, then krew's own validator and an offline krew install of each archive
krew-check: dist
	hack/krew-check.sh $(VERSION) dist

## image: the kubectl-etcd image ghcr.io/kubectl-etcd/kubectl-etcd:$(VERSION) (linux amd64+arm64) in dist/,
## and its digest in dist/image-digest
image: dist
	$(GO) run ./hack/image --version $(VERSION) --dist dist

## release: make image, then the archives and krew manifest again with the image's digest stamped
## into the plugin (version.ImageDigest), so its host pods run that image by digest, not by tag
release: image
	$(GO) run ./hack/dist --version $(VERSION) --ldflags "$(LDFLAGS) -X $(PKG)/pkg/version.ImageDigest=$$(cat dist/image-digest)" --out dist

## Disaster rehearsals on the demo bed (make demo first). Each breaks it the way the
## matching story of docs/runbooks.md starts; follow the runbook to bring it back.
.PHONY: backup break-member break-quorum break-all
## backup: a snapshot on h1 (/var/lib/kubectl-etcd-backups/demo.db), for break-all's story
backup:
	$(TESTBED) exec h1 -- mkdir -p /var/lib/kubectl-etcd-backups
	$(TESTBED) exec h1 -- kubectl-etcd snapshot save --local --force /var/lib/kubectl-etcd-backups/demo.db
## break-member: one member lost (h3 powered off); the cluster keeps its quorum
break-member:
	$(TESTBED) power-off h3
## break-quorum: quorum lost (h2 and h3 powered off); the apiserver goes down with etcd
break-quorum:
	$(TESTBED) power-off h2
	$(TESTBED) power-off h3
## break-all: everything lost: h2, h3 off, h1's etcd stopped and its data moved out of reach
## (kept in /var/lib/etcd/.kubectl-etcd-destroyed-<time>); restore from `make backup`'s snapshot
break-all:
	$(TESTBED) power-off h2
	$(TESTBED) power-off h3
	$(TESTBED) exec h1 -- sh -c 'mv /etc/kubernetes/manifests/etcd.yaml /etc/kubernetes/etcd.yaml.broken && \
		while pgrep -x etcd >/dev/null; do sleep 0.5; done && \
		mv /var/lib/etcd/member /var/lib/etcd/.kubectl-etcd-destroyed-$$(date -u +%Y%m%dT%H%M%SZ)'

## bench-defrag: time `kubectl etcd defrag h2` against `kubectl exec etcd-h2 -- etcdctl defrag` on a 1 GiB member, one bed
.PHONY: bench-defrag
bench-defrag:
	hack/bench-defrag.sh

## bench-scale: time `kubectl etcd scale` 1 -> 3 against the same learner add/promote by hand (etcdctl), one bed
.PHONY: bench-scale
bench-scale:
	hack/bench-scale.sh 1
