# Builds everything taskwire runs: BPF objects (clang, with BTF), precompiled ajv validators, and
# the bundled hook and CLI (esbuild; koffi stays external because it ships a native module).
NODE ?= $(CURDIR)/.tools/bin/node
CLANG ?= clang
ARCH_INC := /usr/include/$(shell uname -m)-linux-gnu
BPF_CFLAGS := -target bpf -O2 -g -Wall -Werror -Ibpf/include -I$(ARCH_INC)

BPF_SRC := $(wildcard bpf/*.bpf.c)
BPF_OBJ := $(patsubst bpf/%.bpf.c,build/bpf/%.bpf.o,$(BPF_SRC))
SCHEMAS := $(wildcard oci-config/*.schema.json plugins/*/*.schema.json lib/schemas/*.schema.json)
TS_SRC := $(shell find lib plugins hooks cli -name '*.ts' -not -path '*/generated/*' 2>/dev/null)

.PHONY: all bpf ts clean
all: bpf lib/generated/validators.js dist/taskwire-hook.js dist/taskwire.js

bpf: $(BPF_OBJ)

build/bpf/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/include/*.h)
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@
	@# The object's identity for objects loaded once per host (lib/bpf/shared.ts): its content, so
	@# that a rebuild with the same size and mtime (cp -p, tar, packages) is never mistaken for it.
	@sha256sum $@ | cut -c1-16 > $@.id

# Objects the benchmarks load (bench/*.bpf.c, never installed), with the flags of the real ones.
.tools/bench/%.bpf.o: bench/%.bpf.c
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

lib/generated/validators.js: scripts/gen-validators.js $(SCHEMAS)
	$(NODE) scripts/gen-validators.js $@

dist/taskwire-hook.js dist/taskwire.js &: $(TS_SRC) lib/generated/validators.js scripts/bundle.js scripts/koffi-direct.js scripts/hook-launcher.js scripts/pino-no-transport.js
	$(NODE) scripts/bundle.js

clean:
	rm -rf build dist lib/generated

# The kernel matrix (test/vm/README.md): the netns focused test on the host kernel and on Debian
# 6.1 and 6.12 under qemu (TCG). Needs root; fetches kernels through apt on first use.
.PHONY: vm-matrix
vm-matrix: all
	test/vm/run-matrix.sh --kernels "$(or $(KERNELS),host 6.1 6.12)" -- $(CURDIR)/test/vm/focused.sh
