# cairn: `make run` builds the default image and boots it; `make test` runs
# the unit tests and a real QEMU boot per architecture. See README.md.

GO      ?= go
OUT     ?= out
BOARD   ?= qemu-x86_64
DEBS    ?= $(OUT)/debs
CAIRN   := $(OUT)/bin/cairn
# The build's version word, the one the CLI and every image built by
# `make image` carry (`cairn version`, the nodes' os-release, kubectl's
# OS-IMAGE): git describe of this tree, as `cairn build` names it; taken
# once per make, so a tree edited during the build cannot split the word.
ifeq ($(origin VERSION),undefined)
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
endif

export CGO_ENABLED ?= 0

.PHONY: all deps kernels cairn image run test unit boot e2e bench bench-idle conformance fuzz components components-amd64 components-arm64 components-test components-sizes clean

all: cairn

# Debian packages and Go modules the build and tests need (idempotent).
deps:
	bash .ci/deps

# Kernel packages for every board, fetched with apt-get download into $(DEBS).
kernels: deps
	bash .ci/kernels $(DEBS)

cairn:
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(CAIRN) ./cmd/cairn

# The default image: kernel + initramfs + system image for $(BOARD), with the
# node components for the board's arch (built once, cached by version; a
# cold build takes 9 minutes on 2 idle cores, 35 on busy ones, see docs/components.md).
BOARD_ARCH = $(shell awk '/^arch:/ {print $$2; exit}' boards/$(BOARD).yaml)
image: cairn kernels components-$(BOARD_ARCH)
	$(CAIRN) build -board $(BOARD) -kernel $(DEBS) -o $(OUT)/$(BOARD) -components $(OUT)/components -version $(VERSION)

# The node components for one architecture.
components-amd64 components-arm64: deps
	bash image/components/build.sh $(abspath $(OUT))/components $(@:components-%=%)

# Boot the default image in QEMU (TCG); Ctrl-A X quits.
run: image
	$(CAIRN) run -board $(BOARD) $(OUT)/$(BOARD)

# Unit tests, then a real QEMU boot per architecture.
test: deps kernels unit boot

unit:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) test -timeout 30m ./...

# Build and boot each architecture's image once under QEMU (TCG): init
# starting, config loaded, DHCP on the user network, power button to power-off.
boot: cairn
	CAIRN=$(abspath $(CAIRN)) CAIRN_DEBS=$(abspath $(DEBS)) $(GO) test -count=1 -tags qemu -run '^TestBoot(X86_64|Arm64)$$' -v -timeout 30m ./test/

# Every end-to-end test (docs/testing.md): config sources, bad and hostile
# configs, networks (static, DHCP renewal), servers on every datastore and on
# embedded etcd across servers (HA, snapshots, restore), agents, the VIP,
# the day-one services (registries, manifests, storage, metrics, LoadBalancer),
# least privilege (tokens, rotation, secrets at rest), upgrades; needs root.
# The node components' tests run first: their cold build takes 20-40 minutes,
# too long for `make test` on a fresh CI machine, and seconds once cached.
# Not here: `make conformance` and `make bench-idle` (hours, a quiet machine).
e2e: deps kernels cairn components-test
	CAIRN=$(abspath $(CAIRN)) CAIRN_DEBS=$(abspath $(DEBS)) $(GO) test -count=1 -tags qemu -v -timeout 360m ./test/

# Go benchmarks, then the node payload's sizes per component and arch,
# installed and compressed, and build times: build.sh's log and a warm
# relink measured now (BENCH_COLD=1 adds a cold build, 12+ minutes per arch).
bench: deps kernels components
	CAIRN_DEBS=$(abspath $(DEBS)) $(GO) test -run '^$$' -bench . -benchmem ./...
	bash image/components/bench.sh $(abspath $(OUT))/components

# What nodes cost at rest (issue #26, docs/performance.md): 2 servers on
# PostgreSQL and an agent, a server on embedded etcd, then a server VM under
# TCG. Root, a quiet machine, about 45 minutes; BENCH_IDLE_FLAGS='-only pg'
# measures one part.
bench-idle: cairn kernels components-$(BOARD_ARCH)
	$(GO) run ./test/idle -cairn $(abspath $(CAIRN)) -kernel $(abspath $(DEBS)) -components $(abspath $(OUT))/components -out $(abspath $(OUT))/bench-idle $(BENCH_IDLE_FLAGS)

# Kubernetes's own [Conformance] suite on a local cluster (docs/conformance.md):
# builds e2e.test, ginkgo and the test images offline, starts `cairn cluster up
# --servers 2 --agents 2 --datastore postgres`, runs the suite; root, hours.
# CONFORMANCE_FLAGS='-focus REGEX' or '-resume' for part of it.
conformance: deps kernels cairn components-$(BOARD_ARCH)
	$(GO) run ./test/conformance -cairn $(abspath $(CAIRN)) -components $(abspath $(OUT))/components \
		-kernel $(abspath $(DEBS)) -out $(abspath $(OUT))/conformance $(CONFORMANCE_FLAGS)

# Every fuzz target for FUZZTIME each (parsers of outside input).
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz: $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf $(OUT)

# Node components (Kubernetes, kine, etcd, containerd, runc, CNI) for both
# architectures into $(OUT)/components/linux-<arch>/, cached by version.
components: deps
	bash image/components/build.sh $(abspath $(OUT))/components

# The components' tests: every applet's version, components.json, a real
# PostgreSQL + kine + kube-apiserver serving /readyz, arm64 under qemu-user,
# cairn-node's size bound and its help pages.
components-test: components
	cd image/components && CAIRN_COMPONENTS=$(abspath $(OUT))/components $(GO) test -count=1 -v -timeout 30m \
		./componenttest ./cmd/cairn-pod ./internal/multicall ./internal/ociarchive ./internal/flannel ./internal/dceoverlay

# The node payload's sizes per component and architecture, installed and
# compressed (zstd -19, xz -9), and the build times logged for that build.
components-sizes: components
	bash image/components/sizes.sh $(abspath $(OUT))/components/linux-amd64 $(abspath $(OUT))/components/linux-arm64
