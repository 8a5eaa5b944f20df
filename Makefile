# A thin wrapper over meson. Two entry points matter on a fresh Debian 12 machine:
#   make demo    installs what is missing, builds, runs the demo (scripts/demo.sh)
#   make demo-docker  the same story on Docker hosts the demo starts (scripts/demo-docker.sh)
#   make check   installs what is missing, runs every test, then every test again under
#                ASan+UBSan but the long scenario runs (suite 'long', tests/integration/meson.build),
#                then the parser fuzzers briefly (FUZZ_SECONDS, default 15 each)
BUILD      ?= build
ASAN_BUILD ?= build-asan
MESON_TEST  = meson test --print-errorlogs --num-processes 2

.PHONY: all deps deps-test build check check-plain check-asan check-fuzz demo demo-docker fuzz bench clean

all: build

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

$(BUILD)/build.ninja:
	meson setup $(BUILD) >/dev/null

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Dbuildtype=debug >/dev/null

check: deps-test
	@$(MAKE) --no-print-directory check-plain check-asan check-fuzz; rc=$$?; scripts/test-summary.sh $(BUILD) $(ASAN_BUILD); exit $$rc

check-plain: $(BUILD)/build.ninja
	ninja -C $(BUILD)
	$(MESON_TEST) -C $(BUILD)

check-asan: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
		$(MESON_TEST) -C $(ASAN_BUILD) --no-suite long

check-fuzz:
	FUZZ_SECONDS=$${FUZZ_SECONDS:-15} scripts/fuzz.sh

demo: build
	scripts/demo.sh $(BUILD)

demo-docker: deps-test build
	scripts/demo-docker.sh $(BUILD)

fuzz: deps-test
	scripts/fuzz.sh

bench: build
	@echo "benchmarks: bench/proxy, bench/verdicts, bench/baseline, bench/footprint (see docs/proxy.md, docs/verification.md, docs/architecture.md)"

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
