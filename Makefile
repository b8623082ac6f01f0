# libcvnet — see README.md. Targets: all (default), test, bench, run, examples, install,
# format, lint, clean. Options: SANITIZE=1 (ASan + UBSan), WERROR=1, PREFIX=/usr/local.

CC      ?= cc
PREFIX  ?= /usr/local
VERSION := $(shell sed -n 's/^#define CVN_VERSION "\(.*\)"/\1/p' lib/cvnet.h)

ifeq ($(SANITIZE),1)
BUILD   := build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD   := build
SANFLAGS :=
endif

OPT     ?= -O2
WARN    := -Wall -Wextra -Wshadow -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN    += -Werror
endif
CFLAGS  := -std=c11 $(OPT) -g -fPIC -fopenmp -D_GNU_SOURCE $(WARN) $(SANFLAGS) -Ilib -Ikernels
# OpenBLAS's OpenMP build shares our OpenMP thread pool; the default pthread build spins its own
# threads against ours (2.5x slower convolution backward on 2 cores), so we link the OpenMP one.
BLAS_DIR := /usr/lib/x86_64-linux-gnu/openblas-openmp
LDLIBS  := -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas -lstb -lsqlite3 -lz -lm -fopenmp -lpthread $(SANFLAGS)

# CUDA: CUDA=1 builds kernels/cuda with nvcc; CUDA=auto turns it on where nvcc and cudnn.h exist.
CUDA_HOME ?= /usr/local/cuda
NVCC    := $(CUDA_HOME)/bin/nvcc
ifeq ($(CUDA),auto)
CUDA := $(shell test -x $(NVCC) && test -f $(CUDA_HOME)/include/cudnn.h && echo 1 || echo 0)
endif
ifeq ($(CUDA),1)
BUILD   := $(BUILD)-cuda
CU_SRC  := $(wildcard kernels/cuda/*.cu)
CU_OBJ  := $(CU_SRC:%.cu=$(BUILD)/%.o)
CFLAGS  += -DCVN_WITH_CUDA
NVFLAGS := -O2 -std=c++17 -Xcompiler -fPIC -Ilib -Ikernels -DCVN_WITH_CUDA \
           -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
           -gencode arch=compute_90,code=compute_90
LDLIBS  += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublas -lcudnn -lstdc++
endif

LIB_SRC := $(wildcard lib/core/*.c lib/ops/*.c lib/nn/*.c lib/optim/*.c lib/data/*.c lib/io/*.c lib/hpo/*.c lib/report/*.c) \
           kernels/backend.c $(filter-out kernels/cpu/simd_kernels.c,$(wildcard kernels/cpu/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
# The SIMD kernels are one source compiled once per instruction set; the dispatcher picks one at run time.
SIMD_VARIANTS := avx512 avx2 scalar
SIMD_OBJ := $(SIMD_VARIANTS:%=$(BUILD)/kernels/cpu/simd_kernels_%.o)
FLAGS_avx512 := -DCVN_SIMD_NAME=avx512 -DCVN_VW=16 -mavx512f -mavx512dq -mavx512vl -mavx2 -mfma
FLAGS_avx2   := -DCVN_SIMD_NAME=avx2 -DCVN_VW=8 -mavx2 -mfma
FLAGS_scalar := -DCVN_SIMD_NAME=scalar -DCVN_VW=1

HDRS    := $(wildcard lib/*.h lib/*/*.h kernels/*.h kernels/*/*.h)
CUDA_HDRS := $(wildcard kernels/cuda/*.cuh)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm -lpthread)

TEST_SRC := $(wildcard tests/test_*.c)
TEST_CXX_SRC := $(wildcard tests/test_*.cpp)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%) $(TEST_CXX_SRC:tests/%.cpp=$(BUILD)/tests/%) \
            $(BUILD)/tests/test_cuda_emulated
TEST_COMMON := $(BUILD)/tests/testutil.o
# the op and optimizer cases the tests share, testutil.h, check_run.h
TEST_HDRS := $(wildcard tests/*.h)
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
EXAMPLE_SRC := $(wildcard examples/*.c)
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(BUILD)/examples/%)

.PHONY: all deps test bench run examples install format lint clean data
.SECONDARY:

all: $(BUILD)/libcvnet.a $(BUILD)/libcvnet.so $(BUILD)/cvnet.pc

deps:
	@scripts/install-deps.sh

$(BUILD)/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/kernels/cpu/simd_kernels_%.o: kernels/cpu/simd_kernels.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(FLAGS_$*) -c $< -o $@

$(BUILD)/kernels/cuda/%.o: kernels/cuda/%.cu $(HDRS) $(CUDA_HDRS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c $< -o $@

$(BUILD)/libcvnet.a: $(LIB_OBJ) $(SIMD_OBJ) $(CU_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libcvnet.so: $(LIB_OBJ) $(SIMD_OBJ) $(CU_OBJ)
	$(CC) -shared -Wl,-soname,libcvnet.so.0 -o $@ $^ $(LDLIBS)

$(BUILD)/cvnet.pc: Makefile
	@mkdir -p $(BUILD)
	@printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: cvnet\nDescription: deep learning for vision in C11\nVersion: %s\nLibs: -L$${libdir} -lcvnet\nLibs.private: -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas -lstb -lsqlite3 -lz -lm -fopenmp -lpthread\nCflags: -I$${includedir}\n' '$(PREFIX)' '$(VERSION)' > $@

$(TEST_COMMON): $(TEST_HDRS)
$(BUILD)/tests/%: tests/%.c $(TEST_HDRS) $(TEST_COMMON) $(BUILD)/libcvnet.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< $(TEST_COMMON) -o $@ $(BUILD)/libcvnet.a $(CHECK_LIBS) $(LDLIBS)

# The CUDA backend's device code (tests/cuda_emu.h) and host-side logic run on the CPU: built in
# every configuration.
$(BUILD)/tests/%: tests/%.cpp tests/cuda_emu.h tests/check_run.h $(CUDA_HDRS) kernels/backend.h
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 $(OPT) -g $(WARN) -Wno-unknown-pragmas $(SANFLAGS) -Ilib -Ikernels -Itests $< -o $@ $(CHECK_LIBS) $(SANFLAGS)

# The whole CUDA backend on the CPU: backend_cuda.cu under the emulated runtime of
# tests/cuda_emu_runtime.h (no cuBLAS or cuDNN) in the library, and the GPU harness test_cuda.c
# against it, in every configuration and without the CUDA toolkit.
EMU := $(BUILD)/cuda-emu
EMU_OBJ := $(filter-out $(BUILD)/kernels/backend.o,$(LIB_OBJ)) $(SIMD_OBJ) $(EMU)/backend.o \
           $(EMU)/backend_cuda.o $(EMU)/cuda_emu_vendor.o
EMU_LIB := $(EMU)/libcvnet.a
# -O3 (the emulated kernels are the run's cost), and fmaf as one instruction where this CPU has it
# (a library call otherwise: half the run's time)
EMU_FMA := $(shell grep -qw fma /proc/cpuinfo 2>/dev/null && echo -mfma)
# EMU_FLAGS: more flags for the emulation's objects (-DEMU_UCONTEXT: ucontext fiber switches)
EMU_CXX := $(CXX) -std=c++17 -O3 $(EMU_FMA) -g -fPIC $(WARN) -Wno-unknown-pragmas $(SANFLAGS) \
           -DCVN_CUDA_EMU $(EMU_FLAGS) -Ilib -Ikernels -Itests
EMU_HDRS := $(HDRS) $(CUDA_HDRS) tests/cuda_emu.h tests/cuda_emu_runtime.h

$(EMU)/backend.o: kernels/backend.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DCVN_WITH_CUDA -c $< -o $@

$(EMU)/backend_cuda.o: kernels/cuda/backend_cuda.cu $(EMU_HDRS)
	@mkdir -p $(dir $@)
	$(EMU_CXX) -x c++ -c $< -o $@

$(EMU)/cuda_emu_vendor.o: tests/cuda_emu_vendor.cpp $(EMU_HDRS)
	@mkdir -p $(dir $@)
	$(EMU_CXX) -c $< -o $@

$(EMU_LIB): $(EMU_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tests/test_cuda_emulated: tests/test_cuda.c $(TEST_HDRS) $(TEST_COMMON) $(EMU_LIB)
	$(CC) $(CFLAGS) -DCVN_WITH_CUDA -Itests $< $(TEST_COMMON) $(EMU_LIB) -o $@ $(CHECK_LIBS) \
	  $(LDLIBS) -lstdc++

# The GPU benchmark and examples against the same emulated backend: bench/gpu_check.sh prepare
# runs them once, small, before a GPU's time is spent on them.
$(BUILD)/bench/bench_cuda_emulated: bench/bench_cuda.c bench/bench_util.h $(EMU_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DCVN_WITH_CUDA $< $(EMU_LIB) -o $@ $(LDLIBS) -lstdc++

$(EMU)/examples/%: examples/%.c examples/example_args.h $(EMU_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DCVN_WITH_CUDA $< $(EMU_LIB) -o $@ $(LDLIBS) -lstdc++

$(BUILD)/bench/%: bench/%.c bench/bench_util.h $(BUILD)/libcvnet.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< -o $@ $(BUILD)/libcvnet.a $(LDLIBS)

$(BUILD)/examples/%: examples/%.c examples/example_args.h $(BUILD)/libcvnet.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< -o $@ $(BUILD)/libcvnet.a $(LDLIBS)

# Each suite runs in its own process; CK_FORK stays on so a crash is reported, not fatal.
test: deps
	@$(MAKE) --no-print-directory $(TEST_BIN)
	@fail=0; mkdir -p $(BUILD)/onnx-models; for t in $(TEST_BIN); do echo "== $$t"; \
	  CVN_TEST_DATA=tests/ref CVN_ONNX_OUT=$(BUILD)/onnx-models $$t || fail=1; done; \
	  echo "== ONNX models against onnx.checker and ONNX Runtime"; \
	  tests/onnx/verify.sh $(BUILD)/onnx-models || fail=1; \
	  if [ $$fail = 0 ]; then echo "all suites passed"; else echo "SOME SUITES FAILED"; exit 1; fi

bench: deps
	@$(MAKE) --no-print-directory $(BENCH_BIN) $(BUILD)/examples/onnx_export
	@bench/run.sh $(BUILD) $(CUDA)

examples: deps
	@$(MAKE) --no-print-directory $(EXAMPLE_BIN)

run: deps
	@$(MAKE) --no-print-directory $(BUILD)/examples/classifier
	$(BUILD)/examples/classifier $(RUN_ARGS)

# The real images of ../shared/data (CIFAR-10 as JPEG folders, ants/bees, chest X-rays), unpacked
# into data/ (ignored by git). Code that needs them skips with a message where they are absent.
SHARED_DATA ?= ../shared/data
data:
	@if [ ! -d "$(SHARED_DATA)" ]; then echo "no $(SHARED_DATA): nothing to unpack"; exit 0; fi; \
	mkdir -p data/cifar10 && \
	{ [ -d data/cifar10/train ] || tar xzf $(SHARED_DATA)/cifar10-jpeg.tar.gz -C data/cifar10; } && \
	{ [ -d data/hymenoptera_data ] || tar xzf $(SHARED_DATA)/hymenoptera.tar.gz -C data; } && \
	{ [ -d data/pneumoniamnist ] || tar xzf $(SHARED_DATA)/pneumoniamnist-png.tar.gz -C data; } && \
	echo "unpacked into data/: cifar10/{train,test}, hymenoptera_data/{train,val}, pneumoniamnist"

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(BUILD)/libcvnet.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libcvnet.so $(DESTDIR)$(PREFIX)/lib/libcvnet.so.$(VERSION)
	ln -sf libcvnet.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libcvnet.so.0
	ln -sf libcvnet.so.0 $(DESTDIR)$(PREFIX)/lib/libcvnet.so
	install -m 644 lib/cvnet.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/cvnet.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/

FMT_SRC = $(wildcard lib/*.h lib/*/*.c lib/*/*.h kernels/*/*.c kernels/*/*.h tests/*.c tests/*.h bench/*.c examples/*.c)
format:
	clang-format -i $(FMT_SRC)

lint:
	cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,performance,portability \
	  --inline-suppr --suppress=missingIncludeSystem -Ilib -Ikernels lib kernels

clean:
	rm -rf build build-san
