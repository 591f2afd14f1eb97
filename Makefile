# alignd - the two commands (see README):
#   make run    install missing Debian packages, build, start the daemon
#   make test   install missing packages, build (warnings as errors), run the
#               whole suite, then again under ASan+UBSan, then every fuzz
#               target for TEST_FUZZ_SECONDS each (libFuzzer, clang)
# Other targets: build, asan, fuzz (build the libFuzzer targets), fuzz-run
# (run each for FUZZ_SECONDS), models (regenerate the default model pack in
# models/ from scratch and print its metrics; ~30 min on 2 cores), bench,
# clean. Pass daemon flags with
#   make run ARGS="--server.port=9000 --server.api_keys=secret"
BUILD      ?= build
TEST_BUILD ?= build-test
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
ARGS       ?=
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
# per target in `make test`: 22 targets, JOBS at a time (2 cores: 11 x 25 s)
TEST_FUZZ_SECONDS ?= 25

.PHONY: all deps test-deps build run test test-release test-asan test-fuzz asan fuzz fuzz-run models clean

all: build

deps:
	@deploy/install-deps.sh

test-deps:
	@deploy/install-deps.sh --test

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DALIGND_TESTS=OFF >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target alignd

run: build
	$(BUILD)/alignd $(ARGS)

# The default model pack, made again from generated data (models/README.md).
models: build
	models/gen/build_pack.sh $(BUILD)/alignd $(BUILD)/pack-work

test: test-deps test-release test-asan test-fuzz

test-release:
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DALIGND_WERROR=ON >/dev/null
	cmake --build $(TEST_BUILD) -j $(JOBS)
	ctest --test-dir $(TEST_BUILD) --output-on-failure -j $(JOBS)

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer (leaks
# fail too); the OpenAPI lint has nothing to sanitize and runs once above.
test-asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DALIGND_WERROR=ON -DALIGND_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS) -E '^lint\.'

# libFuzzer targets (tests/fuzz, clang with ASan + UBSan): `make fuzz` builds
# them, `make fuzz-run FUZZ_SECONDS=N` runs each for N seconds on a copy of
# its seed corpus (tests/fuzz/run.sh: fails on any crash, leak or sanitizer
# report and prints the executions per target). Their regression replays
# (fuzz.replay.*) run in both suites above.
fuzz: test-deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DALIGND_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_targets

fuzz-run: fuzz
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(JOBS)

test-fuzz:
	$(MAKE) --no-print-directory fuzz-run FUZZ_SECONDS=$(TEST_FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
