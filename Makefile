# Herald: the two commands of the README, and the developer helpers.
#   make run    install what is missing, build, start a broker and an edge
#   make test   install what is missing, build with ASan+UBSan, run every test; then
#               build the unit suites alone in Release without sanitizers and run
#               them again (a check that holds only under ASan, or a warning that
#               only -O3 raises, fails there)
#   make fuzz   every libFuzzer target in tests/fuzz/ for FUZZ_SECONDS (default 60) each,
#               through tests/fuzz/run.sh, corpora and crash inputs kept in FUZZ_BUILD; runs them
#               all, then fails naming the targets that failed
#   make install  build (Release, as make build), then cmake --install into PREFIX (default
#               /usr/local): the programs to PREFIX/bin, conf/*.conf to /etc/herald (an edited one
#               is kept, the shipped one goes beside it as .default), the systemd units to
#               PREFIX/lib/systemd/system; DESTDIR stages it all under another root
#   make soak   build, then bench/soak.sh: SOAK_SECONDS (default 300) of abuse against one
#               broker and one edge while 1,000 subscribers receive events (not in make test)
BUILD      ?= build
TEST_BUILD ?= build-test
UNIT_BUILD ?= build-test-release
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
SOAK_SECONDS ?= 300
FUZZ_SECONDS ?= 60
FUZZ_BUILD   ?= build-fuzz
PREFIX       ?= /usr/local
SOURCES     = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find common broker edge tools tests bench -name '*.[ch]')

.PHONY: all deps test-deps build install run test fuzz soak format lint clean

all: build

deps:
	@tools/install-deps.sh build

test-deps:
	@tools/install-deps.sh test

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHERALD_TESTS=OFF >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

run: build
	@tools/run.sh $(BUILD)

soak: build
	BUILD=$(BUILD) bench/soak.sh $(SOAK_SECONDS)

test: test-deps
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DHERALD_SANITIZE=ON >/dev/null
	cmake --build $(TEST_BUILD) -j $(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600
	cmake -S . -B $(UNIT_BUILD) -DCMAKE_BUILD_TYPE=Release -DHERALD_SANITIZE=OFF >/dev/null
	cmake --build $(UNIT_BUILD) -j $(JOBS) --target unit_suites
	cd $(UNIT_BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600 -L '^unit$$'

fuzz: test-deps
	@failed=""; \
	for src in tests/fuzz/fuzz_*.c; do \
	    name=$${src#tests/fuzz/fuzz_}; name=$${name%.c}; \
	    tests/fuzz/run.sh "$$name" $(FUZZ_SECONDS) $(FUZZ_BUILD) || failed="$$failed $$name"; \
	done; \
	if [ -n "$$failed" ]; then echo "make fuzz: failed:$$failed (inputs in $(FUZZ_BUILD))" >&2; exit 1; fi

format:
	clang-format -i $(SOURCES)

lint:
	clang-format --dry-run -Werror $(SOURCES)
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --inline-suppr --std=c11 -I. common broker edge tools

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(UNIT_BUILD) $(FUZZ_BUILD)
