# Convenience wrapper around CMake. `make` builds build/deltadct; see README.md.
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
CTEST_ARGS ?=

.PHONY: all test check test-asan test-tsan demo fuzz bench clean setup

all: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DDDCT_WERROR=ON $(CMAKE_FLAGS)

setup:
	./scripts/setup.sh

# The whole test suite (unit tests, CLI round trips, shared fixtures when present).
test: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# The fast tier, under a minute on 2 cores: unit tests, fuzz corpus replays, golden files and a
# short CLI round trip (ctest label "fast").
check: all
	cd $(BUILD) && ctest -L fast --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer (DDCT_ASAN=1: tests skip
# their peak-memory checks, which sanitizers inflate).
test-asan:
	DDCT_ASAN=1 $(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DCMAKE_BUILD_TYPE=Debug -DDDCT_SANITIZE=ON"

# Threaded paths under ThreadSanitizer: clang with LLVM's OpenMP runtime (libomp),
# with its TSan tool (Archer) loaded, so OpenMP's own synchronisation is understood.
test-tsan: export OMP_TOOL_LIBRARIES = /usr/lib/llvm-14/lib/libarcher.so
test-tsan: export TSAN_OPTIONS = ignore_noninstrumented_modules=1 halt_on_error=1
test-tsan:
	DDCT_ASAN=1 $(MAKE) test BUILD=build-tsan CMAKE_FLAGS="-DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDDCT_TSAN=ON"

# Main job on a built-in generated example: generate a pair, compress, inspect, rebuild, measure.
demo: all
	$(BUILD)/ddct-genpair $(BUILD)/demo
	$(BUILD)/deltadct compress $(BUILD)/demo/base.safetensors $(BUILD)/demo/finetuned.safetensors -o $(BUILD)/demo/model.ddct -f
	$(BUILD)/deltadct info $(BUILD)/demo/model.ddct
	$(BUILD)/deltadct decompress $(BUILD)/demo/base.safetensors $(BUILD)/demo/model.ddct -o $(BUILD)/demo/rebuilt.safetensors -f
	$(BUILD)/deltadct eval $(BUILD)/demo/base.safetensors $(BUILD)/demo/finetuned.safetensors $(BUILD)/demo/model.ddct
	$(BUILD)/deltadct verify $(BUILD)/demo/model.ddct --base $(BUILD)/demo/base.safetensors

clean:
	rm -rf build build-asan build-tsan build-fuzz
