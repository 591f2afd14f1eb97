# alignd - the two commands (see README):
#   make run    install missing Debian packages, build, start the daemon
#   make test   install missing packages, build (warnings as errors), run the
#               whole suite, then again under ASan+UBSan
# Other targets: build, asan, fuzz, bench, clean. Pass daemon flags with
#   make run ARGS="--server.port=9000 --server.api_keys=secret"
BUILD      ?= build
TEST_BUILD ?= build-test
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
ARGS       ?=

.PHONY: all deps test-deps build run test test-release test-asan asan fuzz clean

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

test: test-deps test-release test-asan

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

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(ASAN_BUILD) build-fuzz
