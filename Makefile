# snakebox build. `make` builds build/snakebox; `make run` and `make test` are the README's two
# set-up commands: both first install what is missing (scripts/install-deps, apt on Debian 12).

SHELL    := /bin/bash
CC       ?= gcc
BUILD    ?= build
PKGS     := libmicrohttpd jansson libseccomp python3-embed libcurl
PYTHON   := /usr/bin/python3

# -Wno-format-truncation: snprintf into fixed buffers is how messages are cut on purpose; where a
# cut would change meaning (paths), the code checks snprintf's return value instead.
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
            -Wno-format-truncation
# clang has no -Wformat-truncation (and does not warn about what it catches).
ifneq ($(findstring clang,$(CC)),)
WARN     := $(filter-out -Wno-format-truncation,$(WARN))
endif
HARDEN   := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 $(WARN) $(HARDEN) -D_GNU_SOURCE -Isrc -MMD -MP
LDFLAGS  += -pie -Wl,-z,relro,-z,now
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# `make SANITIZE=address,undefined` builds the whole server with sanitizers.
ifneq ($(SANITIZE),)
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif

SRCS := $(wildcard src/*.c src/util/*.c)
# The sandbox runner's Python source, linked in with .incbin (src/runner-blob.S), and the
# playground page's files (src/playground-blob.S).
BLOB := $(BUILD)/obj/runner-blob.o $(BUILD)/obj/playground-blob.o
OBJS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SRCS)) $(BLOB)
LIB_OBJS := $(filter-out $(BUILD)/obj/main.o,$(OBJS))

.PHONY: all run test unit api api-unprivileged deps check host-check clean format format-check example \
        bench fuzz fuzz-replay soak tidy tidy-changed tidy-seed lint build-clang api-sanitized \
        compat compat-subset image image-test image-test-if-possible browser-test mcp-test cluster-test
all: $(BUILD)/snakebox

# V=1 shows the commands.
Q := $(if $(V),,@)

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(BUILD)/obj/runner-blob.o: src/runner-blob.S src/runner.py src/learn.py src/warmup.py docs/openapi.json \
                            $(BUILD)/snakebox-init
	@mkdir -p $(dir $@)
	$(Q)$(CC) -DSANDBOX_INIT_BIN='"$(BUILD)/snakebox-init"' -c $< -o $@

$(BUILD)/obj/playground-blob.o: src/playground-blob.S $(wildcard src/playground/*)
	@mkdir -p $(dir $@)
	$(Q)$(CC) -c $< -o $@

# A sandbox's pid 1 (src/init/sandbox-init.c): a static program without libc, embedded in the
# binary and exec'd by every sandbox. Built apart from CFLAGS: no sanitizer, no stack protector
# (there is no libc to provide their runtime), nothing that would make it map more than itself.
INIT_CFLAGS := -std=gnu11 -O2 $(WARN) -ffreestanding -fno-stack-protector -fno-pie -fno-builtin \
               -fno-asynchronous-unwind-tables -nostdlib -static -Wl,--build-id=none -s
$(BUILD)/snakebox-init: src/init/sandbox-init.c src/proto.h
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(INIT_CFLAGS) -o $@ $<

$(BUILD)/snakebox: $(OBJS)
	@echo "  LINK    $@"
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# Unit tests: each tests/unit/test-X.c links against every module but main, built apart with
# AddressSanitizer and UBSan (leak detection on).
UNIT_SRCS  := $(wildcard tests/unit/test-*.c)
UNIT_BUILD := $(BUILD)/asan
UNIT_BINS  := $(patsubst tests/unit/%.c,$(UNIT_BUILD)/%,$(UNIT_SRCS))
UNIT_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
UNIT_OBJS  := $(patsubst src/%.c,$(UNIT_BUILD)/obj/%.o,$(filter-out src/main.c,$(SRCS))) $(BLOB)

$(UNIT_BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	@echo "  CC asan $<"
	$(Q)$(CC) $(filter-out -O2,$(CFLAGS)) $(UNIT_FLAGS) $(PKG_CFLAGS) -c $< -o $@

$(UNIT_BUILD)/test-%: tests/unit/test-%.c $(UNIT_OBJS)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(filter-out -O2,$(CFLAGS)) $(UNIT_FLAGS) $(PKG_CFLAGS) -o $@ $^ $(PKG_LIBS) -lcmocka

# Every test binary runs, even after a failure; the target fails if any did.
unit: $(UNIT_BINS)
	@fail=0; for t in $(UNIT_BINS); do echo "== $$t"; ASAN_OPTIONS=detect_leaks=1 $$t || fail=1; done; \
	exit $$fail

api: $(BUILD)/snakebox
	$(PYTHON) -m pytest -q tests/api tests/escape

# The same suites against a build of the server with AddressSanitizer (leaks included) and UBSan;
# the tests fail on any sanitizer report in the server's stderr (tests/conftest.py).
SAN_BUILD := $(BUILD)/san
api-sanitized:
	$(MAKE) BUILD=$(SAN_BUILD) SANITIZE=address,undefined all
	SNAKEBOX_BIN=$(SAN_BUILD)/snakebox SNAKEBOX_SANITIZED=1 $(PYTHON) -m pytest -q tests/api tests/escape

# /mcp with the official MCP TypeScript SDK client (tests/mcp/sdk-client.mjs) and the official
# conformance suite (tests/mcp/conformance.mjs), both from npm at the versions
# tests/mcp/package-lock.json pins, installed under build/ (again only when the lockfile changes).
MCP_CLIENT := $(BUILD)/mcp-client
$(MCP_CLIENT)/.installed: tests/mcp/package.json tests/mcp/package-lock.json
	@mkdir -p $(MCP_CLIENT)
	cp tests/mcp/package.json tests/mcp/package-lock.json $(MCP_CLIENT)/
	cd $(MCP_CLIENT) && npm ci --no-audit --no-fund --loglevel=error
	touch $@
mcp-test: $(BUILD)/snakebox $(MCP_CLIENT)/.installed
	cp tests/mcp/*.mjs $(MCP_CLIENT)/
	cd $(MCP_CLIENT) && node sdk-client.mjs $(abspath $(BUILD)/snakebox)
	cd $(MCP_CLIENT) && node conformance.mjs $(abspath $(BUILD)/snakebox) \
		$(abspath tests/mcp/conformance-baseline.yml)

# The server built with clang too, warnings as errors (gcc builds it everywhere else).
build-clang:
	$(MAKE) BUILD=$(BUILD)/clang CC=clang all

# Static analysis: clang-tidy with the checks in .clang-tidy, each explained there.
TIDY_ARGS  = -- -std=gnu11 -D_GNU_SOURCE -Isrc $(PKG_CFLAGS)
TIDY_QUIET := grep -v "warnings\? generated\.$$\|^Suppressed [0-9]* warnings\|NOLINT\|-header-filter\|-system-headers"
tidy:
	clang-tidy --quiet $(SRCS) $(TIDY_ARGS) 2>&1 | $(TIDY_QUIET); exit $${PIPESTATUS[0]}

# The same checks, one file per job, only on what changed: the whole tree takes clang-tidy ~80 s
# of CPU, most of `make check`'s budget, and a change to one .c file needs a few seconds of it.
# A file's stamp is made when it passes, with the list of headers it includes (gcc -MM), so an
# edit to the file or to any of its headers checks it again. In a fresh build directory, files
# identical to TIDY_BASE (main, which passed `make tidy` in `make test`) get their stamps without
# a check, unless a header or .clang-tidy differs from it; TIDY_BASE= checks every file.
TIDY_BASE   ?= main
TIDY_STAMPS := $(patsubst src/%.c,$(BUILD)/tidy/%.ok,$(SRCS))
TIDY_DEPS    = $(CC) -MM -MP -MT $@ -MF $(@:.ok=.d) -std=gnu11 -D_GNU_SOURCE -Isrc $(PKG_CFLAGS) $<
$(BUILD)/tidy/%.ok: src/%.c .clang-tidy
	@mkdir -p $(dir $@)
	@echo "  TIDY    $<"
	$(Q)clang-tidy --quiet $< $(TIDY_ARGS) 2>&1 | $(TIDY_QUIET); exit $${PIPESTATUS[0]}
	$(Q)$(TIDY_DEPS)
	@touch $@
tidy-seed:
	$(Q)base=$$(git merge-base HEAD $(TIDY_BASE) 2>/dev/null) || exit 0; \
	git diff --quiet $$base -- .clang-tidy 'src/*.h' 'src/util/*.h' || exit 0; \
	for f in $(SRCS); do \
	        ok=$(BUILD)/tidy/$${f#src/}; ok=$${ok%.c}.ok; \
	        [ -e $$ok ] && continue; \
	        git cat-file -e $$base:$$f 2>/dev/null && git diff --quiet $$base -- $$f || continue; \
	        mkdir -p $$(dirname $$ok); \
	        $(CC) -MM -MP -MT $$ok -MF $${ok%.ok}.d -std=gnu11 -D_GNU_SOURCE -Isrc $(PKG_CFLAGS) $$f && \
	        touch $$ok; \
	done
tidy-changed: $(TIDY_STAMPS)

# Python lint: pyflakes (undefined names, unused imports and variables, redefinitions) over the
# runner, the tests and the benchmark. Debian's pyflakes3 (python3-pyflakes), like the pytest.
PYFLAKES ?= pyflakes3
PY_SRCS  := $(wildcard src/*.py) tests bench
lint:
	$(PYFLAKES) $(PY_SRCS)

# The playground page in headless Chromium (tests/browser, Debian's chromium, chromium-driver and
# python3-selenium); the tests skip, saying why, only where chromium cannot start. -rs prints
# that reason. Screenshots land in build/browser/.
browser-test: $(BUILD)/snakebox
	$(PYTHON) -m pytest -q -rs tests/browser

# The same suites with the server as an unprivileged user (scripts/test-unprivileged).
api-unprivileged: $(BUILD)/snakebox
	scripts/test-unprivileged

deps:
	scripts/install-deps

# The README's two commands.
run: deps
	$(MAKE) all
	$(BUILD)/snakebox serve

TEST_FUZZ_SECONDS ?= 60
# A parser of untrusted bytes must cost a small multiple of its input: libFuzzer's inputs are at
# most 4 KiB here, so a target that needs more than this has an input that multiplies its size
# (the forged reports of empty objects did ~150x). ASan's shadow and quarantine take most of it.
FUZZ_RSS_MB ?= 1024
test: deps
	$(MAKE) all
	$(MAKE) format-check
	$(MAKE) lint
	$(MAKE) tidy
	$(MAKE) build-clang
	$(MAKE) unit
	$(MAKE) fuzz-replay
	$(MAKE) fuzz FUZZ_SECONDS=$(TEST_FUZZ_SECONDS)
	$(MAKE) api
	$(MAKE) compat-subset
	$(MAKE) cluster-test
	$(MAKE) api-sanitized
	$(MAKE) browser-test
	$(MAKE) mcp-test
	$(MAKE) soak SOAK_REQUESTS=1000
	$(MAKE) api-unprivileged
	$(MAKE) image-test-if-possible

# Many instances (tests/cluster, docs/scaling.md): three servers (NODE_ID 0, 1, 2) on loopback
# ports and Debian's nginx in front with deploy/nginx/snakebox.conf, started and stopped by the
# tests; then yamllint and a field check of the Kubernetes manifests (deploy/k8s).
cluster-test: $(BUILD)/snakebox
	$(PYTHON) -m pytest -q tests/cluster

# Fuzzing: one target per parser of untrusted bytes (fuzz/fuzz-*.c). `make fuzz` builds them with
# clang's libFuzzer, ASan and UBSan and runs each for FUZZ_SECONDS on a copy of its seed corpus;
# `make fuzz-replay` builds them with the normal compiler and a plain main (fuzz/replay.c) and
# runs the seed corpus once, as part of `make test`.
FUZZ_SECONDS ?= 60
# A parser of untrusted bytes must cost a small multiple of its input: libFuzzer's inputs are at
# most 4 KiB here, so a target that needs more than this has an input that multiplies its size
# (the forged reports of empty objects did ~150x). ASan's shadow and quarantine take most of it.
FUZZ_RSS_MB ?= 1024
FUZZ_TARGETS := $(patsubst fuzz/fuzz-%.c,%,$(wildcard fuzz/fuzz-*.c))
FUZZ_BUILD   := $(BUILD)/fuzz
FUZZ_FLAGS   := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
FUZZ_CFLAGS  := $(filter-out -O2 -Wno-format-truncation,$(CFLAGS)) -Wno-unknown-warning-option \
                -Wno-missing-field-initializers
FUZZ_OBJS    := $(patsubst src/%.c,$(FUZZ_BUILD)/obj/%.o,$(filter-out src/main.c,$(SRCS))) $(BLOB)

$(FUZZ_BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	@echo "  CLANG   $<"
	$(Q)clang $(FUZZ_CFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link $(PKG_CFLAGS) -c $< -o $@

$(FUZZ_BUILD)/fuzz-%: fuzz/fuzz-%.c $(FUZZ_OBJS)
	@echo "  FUZZER  $@"
	$(Q)clang $(FUZZ_CFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer $(PKG_CFLAGS) -o $@ $^ $(PKG_LIBS)

fuzz: $(patsubst %,$(FUZZ_BUILD)/fuzz-%,$(FUZZ_TARGETS))
	@set -e; for t in $(FUZZ_TARGETS); do \
	        work=$$(mktemp -d); cp fuzz/corpus/$$t/* $$work/; \
	        echo "== fuzz-$$t for $(FUZZ_SECONDS) s"; \
	        $(FUZZ_BUILD)/fuzz-$$t -max_total_time=$(FUZZ_SECONDS) -dict=fuzz/json.dict \
	                -rss_limit_mb=$(FUZZ_RSS_MB) -malloc_limit_mb=$(FUZZ_RSS_MB) \
	                -artifact_prefix=$(FUZZ_BUILD)/crash-$$t- -print_final_stats=1 $$work 2>&1 | tail -n 12; \
	        rm -rf $$work; \
	done

$(UNIT_BUILD)/replay-%: fuzz/fuzz-%.c fuzz/replay.c $(UNIT_OBJS)
	@echo "  LINK    $@"
	$(Q)$(CC) $(filter-out -O2,$(CFLAGS)) $(UNIT_FLAGS) $(PKG_CFLAGS) -o $@ $^ $(PKG_LIBS)

fuzz-replay: $(patsubst %,$(UNIT_BUILD)/replay-%,$(FUZZ_TARGETS))
	@set -e; for t in $(FUZZ_TARGETS); do echo "== replay fuzz/corpus/$$t"; \
	        ASAN_OPTIONS=detect_leaks=1 $(UNIT_BUILD)/replay-$$t fuzz/corpus/$$t; done

# Soak (tests/soak.py): SOAK_REQUESTS requests of every kind at 32 clients, then checks that
# nothing leaked (processes, cgroups, mounts, fds, memory). `make test` runs a short one.
SOAK_REQUESTS ?= 10000
soak: $(BUILD)/snakebox
	$(PYTHON) tests/soak.py --requests $(SOAK_REQUESTS)

# The benchmark (bench/README.md): latency, throughput, memory, against baselines measured in the
# same run. Not a test; BENCH_ARGS=--quick for a short run.
bench:
	scripts/install-deps bench
	$(MAKE) all
	$(PYTHON) bench/bench.py $(BENCH_ARGS)

# Compatibility (tests/README.md): real code from Debian packages (scikit-learn gallery,
# pandas user guide, CPython's regression tests) through snakebox and through plain python3, item
# by item; the report is build/compat/report.md. Fails when an item differs other than by design
# (tests/compat/expected.toml). `make test` runs the short subset, with the default limits.
# COMPAT_ARGS="--only cpython/test_os" picks items.
compat:
	scripts/install-deps compat
	$(MAKE) all
	$(PYTHON) tests/compat/compat.py $(COMPAT_ARGS)

compat-subset: $(BUILD)/snakebox
	$(PYTHON) tests/compat/compat.py --subset

# The container image (deploy/Dockerfile, deploy/README.md), built with docker where its daemon
# answers, else podman, from a base that scripts/image makes with debootstrap where no registry
# is reachable (cached in the engine). `make image-test` builds it and runs tests/image against
# containers of it on loopback ports (the documented flags, the README's examples, an escape
# subset, each flag left out), then removes them. IMAGE_TAG names the image, IMAGE_BASE another
# base (a registry's debian:12-slim, say).
IMAGE_TAG ?= snakebox:dev
image:
	IMAGE_TAG=$(IMAGE_TAG) scripts/image build

image-test:
	IMAGE_TAG=$(IMAGE_TAG) scripts/image test

# In `make test`: skipped, with one line saying why, where this machine cannot run a container.
image-test-if-possible:
	@if why=$$(scripts/image probe 2>&1); then $(MAKE) --no-print-directory image-test; \
	else echo "image-test: SKIPPED: $$why"; fi

# The developer's gate, for use while working (`make test` stays the full suite): build, format
# check, pyflakes, clang-tidy on what changed, the unit tests and the fuzz corpus replay. Everything
# is built in one parallel make (CHECK_JOBS, default: one per core), then the tests run; every
# step runs even after a failure, so one run shows them all. Not `make test`'s clang build,
# libFuzzer run, pytest suites or soak.
CHECK_JOBS ?= $(shell nproc)
check:
	@$(MAKE) --no-print-directory tidy-seed
	@fail=0; \
	$(MAKE) --no-print-directory -k -j$(CHECK_JOBS) --output-sync=target all format-check lint tidy-changed \
	        $(UNIT_BINS) $(patsubst %,$(UNIT_BUILD)/replay-%,$(FUZZ_TARGETS)) || fail=1; \
	$(MAKE) --no-print-directory unit || fail=1; \
	$(MAKE) --no-print-directory fuzz-replay || fail=1; \
	if [ $$fail = 0 ]; then echo "check: passed"; else echo "check: FAILED (see above)"; fi; exit $$fail

# The host self-check: what this host supports, and one sandbox sealed to prove it.
host-check: $(BUILD)/snakebox
	$(BUILD)/snakebox check

example: $(BUILD)/snakebox
	$(BUILD)/snakebox example > .env.example

format:
	clang-format -i src/*.c src/*.h src/util/*.h src/util/*.c src/init/*.c tests/unit/*.c fuzz/*.c

format-check:
	clang-format --dry-run --Werror src/*.c src/*.h src/util/*.h src/util/*.c src/init/*.c tests/unit/*.c fuzz/*.c

clean:
	rm -rf $(BUILD)

.SECONDARY:

-include $(filter-out $(BLOB:.o=.d),$(OBJS:.o=.d) $(UNIT_OBJS:.o=.d)) $(TIDY_STAMPS:.ok=.d)
