# litecast: continuous SQLite replication.  `make`, `make run`, `make check`, `make bench`.
CC      ?= cc
CFLAGS  ?= -O2 -g
WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
           -Wcast-qual -Wformat=2 -Werror
PKGS     = sqlite3 inih liblz4
# libcurl and libcrypto: headers at build time; src/store_s3.c dlopen()s them when the first
# S3 replica opens, so a daemon with file replicas only never maps them. Test tools that
# speak HTTP themselves link them.
S3PKGS   = libcurl libcrypto
CPPFLAGS += -std=c11 -D_GNU_SOURCE -Iinclude -MMD -MP \
            $(shell pkg-config --cflags $(PKGS) $(S3PKGS) 2>/dev/null)
LIBS     = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lev -lm -pthread
S3LIBS   = $(shell pkg-config --libs $(S3PKGS) 2>/dev/null)
PREFIX  ?= /usr/local
B        = build

SRC      = $(wildcard src/*.c)
OBJ      = $(SRC:src/%.c=$(B)/obj/%.o)
LIBOBJ   = $(filter-out $(B)/obj/main.o,$(OBJ))
UNIT     = $(wildcard tests/unit/test_*.c)
TOOLS    = $(patsubst tests/tools/%.c,$(B)/tools/%,$(wildcard tests/tools/*.c))
ASANFL   = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

ifeq ($(V),1)
Q =
else
Q = @
endif

.PHONY: all deps run check unit unit-asan integration bench soak install format clean fuzz fuzz-check check-valgrind
# deps first, then the build: under make -j the compilers would race the package install
all:
	$(Q)scripts/deps
	$(Q)$(MAKE) --no-print-directory litecast $(TOOLS)

deps:
	$(Q)scripts/deps

litecast: $(OBJ)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJ) $(LIBS)

$(B)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -c -o $@ $<

$(B)/asan/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(ASANFL) $(WARN) -c -o $@ $<

$(B)/tools/%: tests/tools/%.c $(LIBOBJ)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -o $@ $< $(LIBOBJ) $(LIBS) $(S3LIBS)

$(B)/unit/%: tests/unit/%.c $(LIBOBJ)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -o $@ $< $(LIBOBJ) $(LIBS) -lcmocka

$(B)/unit-asan/%: tests/unit/%.c $(LIBOBJ:$(B)/obj/%=$(B)/asan/%)
	@mkdir -p $(dir $@)
	@echo "  CC      $< (asan)"
	$(Q)$(CC) $(CPPFLAGS) $(ASANFL) $(WARN) -o $@ $< $(LIBOBJ:$(B)/obj/%=$(B)/asan/%) $(LIBS) -lcmocka

run: all
	$(Q)scripts/demo

unit: $(UNIT:tests/unit/%.c=$(B)/unit/%)
	$(Q)for t in $^; do echo "== $$t"; $$t || exit 1; done

unit-asan: $(UNIT:tests/unit/%.c=$(B)/unit-asan/%)
	$(Q)for t in $^; do echo "== $$t (asan)"; \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $$t || exit 1; done

integration: litecast $(TOOLS)
	$(Q)prove -j2 --failures --comments tests/integration/[0-9]*.sh

check:
	$(Q)scripts/deps --test
	$(Q)$(MAKE) --no-print-directory litecast $(TOOLS)
	$(Q)$(MAKE) --no-print-directory unit unit-asan
	$(Q)$(MAKE) --no-print-directory -j2 fuzz-check
	$(Q)$(MAKE) --no-print-directory integration

bench: all
	$(Q)scripts/deps --bench
	$(Q)scripts/bench

soak: all
	$(Q)scripts/deps --test
	$(Q)SOAK=1 prove -v tests/integration/[0-9]*.sh
	$(Q)$(MAKE) --no-print-directory -j2 fuzz FUZZ_SECONDS=$${SOAK_FUZZ_SECONDS:-300}

install: litecast
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/litecast
	install -m 0755 litecast $(DESTDIR)$(PREFIX)/bin/litecast
	install -m 0644 conf/litecast.1 $(DESTDIR)$(PREFIX)/share/man/man1/litecast.1
	install -m 0644 conf/litecast.ini $(DESTDIR)$(PREFIX)/share/litecast/litecast.ini

format:
	clang-format -i src/*.c include/*.h tests/unit/*.c tests/tools/*.c

clean:
	rm -rf $(B) litecast

-include $(OBJ:.o=.d) $(wildcard $(B)/asan/*.d)

# --- fuzzing (clang libFuzzer + ASan/UBSan) and valgrind -------------------------------------
# `make fuzz` builds every tests/fuzz/fuzz_*.c against the library objects (compiled again with
# clang and the sanitizers into $(B)/fuzz/obj) and runs each for FUZZ_SECONDS on a scratch copy
# of its seed corpus tests/fuzz/corpus/NAME (the committed corpus never grows); findings land
# in $(B)/fuzz/run/NAME/. `make -j2 fuzz` runs two at a time. `make fuzz-check`: 15 s each,
# from a fixed seed (FUZZ_SEED, default 1) so that make check is repeatable.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZFL        = -O1 -g -fno-omit-frame-pointer -fno-sanitize-recover=all
FUZZ_SAN      = address,undefined
FUZZ_OBJ      = $(LIBOBJ:$(B)/obj/%=$(B)/fuzz/obj/%)
FUZZ_BIN      = $(patsubst tests/fuzz/%.c,$(B)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_RUNS     = $(FUZZ_BIN:$(B)/fuzz/%=fuzz-run/%)
.PHONY: $(FUZZ_RUNS)

$(B)/fuzz/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $< (fuzz)"
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZFL) -fsanitize=fuzzer-no-link,$(FUZZ_SAN) $(WARN) -c -o $@ $<

$(FUZZ_BIN): $(B)/fuzz/%: tests/fuzz/%.c $(FUZZ_OBJ)
	@mkdir -p $(dir $@)
	@echo "  CC      $< (fuzz)"
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZFL) -fsanitize=fuzzer,$(FUZZ_SAN) $(WARN) -o $@ $< \
	    $(FUZZ_OBJ) $(LIBS)

$(FUZZ_RUNS): fuzz-run/%: $(B)/fuzz/%
	$(Q)tests/fuzz/run.sh $(FUZZ_SECONDS) $<

fuzz: $(FUZZ_RUNS)

fuzz-check:
	$(Q)FUZZ_SEED=$${FUZZ_SEED:-1} $(MAKE) --no-print-directory fuzz FUZZ_SECONDS=15

check-valgrind: litecast $(TOOLS)
	$(Q)prove -v tests/integration/64-valgrind.sh

-include $(wildcard $(B)/fuzz/obj/*.d $(B)/fuzz/*.d)
