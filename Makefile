# litecast: continuous SQLite replication.  `make`, `make run`, `make check`, `make bench`.
CC      ?= cc
CFLAGS  ?= -O2 -g
WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
           -Wcast-qual -Wformat=2 -Werror
PKGS     = sqlite3 inih liblz4 libcurl libcrypto
CPPFLAGS += -std=c11 -D_GNU_SOURCE -Iinclude -MMD -MP
LIBS     = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lev -lm
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

.PHONY: all deps run check unit unit-asan integration bench soak install format clean
all: deps litecast $(TOOLS)

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
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -o $@ $< $(LIBOBJ) $(LIBS)

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
	$(Q)prove -v tests/integration/[0-9]*.sh

check:
	$(Q)scripts/deps --test
	$(Q)$(MAKE) --no-print-directory litecast $(TOOLS)
	$(Q)$(MAKE) --no-print-directory unit unit-asan
	$(Q)$(MAKE) --no-print-directory integration

bench: all
	$(Q)scripts/deps --bench
	$(Q)scripts/bench

soak: all
	$(Q)scripts/deps --test
	$(Q)SOAK=1 prove -v tests/integration/[0-9]*.sh

install: litecast
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/litecast
	install -m 0755 litecast $(DESTDIR)$(PREFIX)/bin/litecast
	install -m 0644 conf/litecast.ini $(DESTDIR)$(PREFIX)/share/litecast/litecast.ini

format:
	clang-format -i src/*.c include/*.h tests/unit/*.c tests/tools/*.c

clean:
	rm -rf $(B) litecast

-include $(OBJ:.o=.d) $(wildcard $(B)/asan/*.d)
