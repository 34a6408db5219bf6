# xlb build. `make V=1` shows the commands.
#   all    bpf objects + native addon + typecheck
#   test   set-up, build, then every test tier (unit, bpf, netns)
#   demo   set-up, build, then the namespace lab demo
#   bench  every benchmark (bench-datapath, bench-e2e, bench-failover, bench-control)
#   clean  remove build outputs

ifeq ($(V),1)
Q :=
else
Q := @
endif

CLANG   ?= clang-14
ARCH    := $(shell uname -m)
BUILD   := build
BPF_SRC := $(wildcard bpf/*.bpf.c)
BPF_OBJ := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRC))
BPF_HDR := $(wildcard bpf/include/*.h bpf/lib/*.h)
NATIVE  := native/build/Release/xlb_native.node
NATIVE_SRC := $(wildcard native/src/*.cc native/src/*.h) native/binding.gyp
TEST_FILES = $(shell find test/unit test/system test/bpf test/netns test/interop -name '*.test.ts' 2>/dev/null | sort)
NODE_TEST  := node --import tsx --test --test-reporter=spec --test-concurrency=1

.PHONY: all bpf native ts setup test test-unit demo bench bench-datapath bench-e2e bench-failover bench-control clean

all: bpf native ts

setup:
	$(Q)scripts/setup

bpf: $(BPF_OBJ)

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(BPF_HDR)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  BPF     $@")
	$(Q)$(CLANG) -O2 -g -Wall -Werror -target bpf -D__TARGET_ARCH_x86 \
		-I bpf/include -I bpf -I /usr/include/$(ARCH)-linux-gnu -c $< -o $@

native: $(NATIVE)

$(NATIVE): $(NATIVE_SRC)
	@$(if $(Q),echo "  NATIVE  $@")
	$(Q)cd native && ../node_modules/.bin/node-gyp rebuild --nodedir=/usr $(if $(Q),--silent,) >/dev/null

ts:
	@$(if $(Q),echo "  TSC     (typecheck)")
	$(Q)node_modules/.bin/tsc --noEmit -p .

test: setup
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(NODE_TEST) $(TEST_FILES)

test-unit:
	$(Q)$(NODE_TEST) $(shell find test/unit -name '*.test.ts' | sort)

demo: setup
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo

bench: bench-datapath bench-e2e bench-failover bench-control

bench-datapath: setup
	$(Q)$(MAKE) --no-print-directory all
	$(Q)node --import tsx scripts/bench-datapath.ts

bench-e2e: setup
	$(Q)$(MAKE) --no-print-directory all
	$(Q)node --import tsx scripts/bench-e2e.ts

bench-failover: setup
	$(Q)$(MAKE) --no-print-directory all
	$(Q)node --import tsx scripts/bench-failover.ts

bench-control: setup
	$(Q)$(MAKE) --no-print-directory all
	$(Q)node --expose-gc --import tsx scripts/bench-control.ts

clean:
	$(Q)rm -rf $(BUILD) native/build
