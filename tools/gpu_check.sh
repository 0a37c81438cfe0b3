#!/bin/bash
# The check for a session that is lent a GPU machine (at most 8 minutes there): the adapters whet
# sees, `whet bench` on the one it picks, and the parity tests of the kernels chosen per adapter
# (matmul variants by subgroup support and limits, quantized and 16-bit weight kernels,
# attention, convolutions, gradchecks), each against its CPU reference.
#
#   tools/gpu_check.sh prepare   # here: release builds into target/gpu_check/bins.tar.xz (~13 MB;
#                                # carry target/gpu_check)
#   tools/gpu_check.sh run       # there: devices.txt, bench_{kernels,steps}.{json,txt}, tests.txt
#                                # into $OUT
#
# The GPU machine has no Rust toolchain and no network, so everything it runs is built here.
# Its NVIDIA Vulkan driver is not always registered with the loader: VK_DRIVER_FILES points at
# it when it is present but unlisted. Every step has its own timeout and the script goes on
# after a failure, so one bad kernel still leaves the bench and the other results.
set -u
cd "$(dirname "$0")/.."
DIR=target/gpu_check
TESTS="ops_vs_reference half_kernels quant_kernels attention_vs_reference cnn_vs_reference gradcheck gradcheck_attention gradcheck_cnn shaders engine bind_groups"

prepare() {
    set -e
    rm -rf "$DIR" && mkdir -p "$DIR/bin"
    cargo build --release --bin whet
    cp target/release/whet "$DIR/bin/"
    local args=()
    for t in $TESTS; do args+=(--test "$t"); done
    # The test binaries' paths, from cargo's own report (no guessing at hash suffixes).
    cargo test --release --no-run "${args[@]}" --message-format=json 2>/dev/null |
        python3 -c '
import json, shutil, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        shutil.copy(m["executable"], sys.argv[1] + "/" + m["target"]["name"])
        print(m["target"]["name"])
' "$DIR/bin"
    # Tests find the shaders and fixtures under the checkout they were built in.
    pwd >"$DIR/built_in.txt"
    # Stripped and compressed: a carried folder may hold 64 MiB, the binaries are ~90 MB.
    strip "$DIR"/bin/*
    tar -cJf "$DIR/bins.tar.xz" -C "$DIR/bin" .
    rm -rf "$DIR/bin"
    du -sh "$DIR"
}

vulkan_visible() {
    # Loader packages fetched beside the checkout (see the device README), if any.
    if compgen -G ".gl/*.deb" >/dev/null; then
        for f in .gl/*.deb; do dpkg -x "$f" /; done
        ldconfig
    fi
    local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then
        export VK_DRIVER_FILES=$icd
        export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    fi
    export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
}

run() {
    local out=${OUT:-$DIR/out}
    mkdir -p "$out"
    if [ ! -x "$DIR/bin/whet" ] && [ -f "$DIR/bins.tar.xz" ]; then
        mkdir -p "$DIR/bin" && tar -xJf "$DIR/bins.tar.xz" -C "$DIR/bin"
    fi
    [ -x "$DIR/bin/whet" ] || { echo "no $DIR/bin/whet: run 'tools/gpu_check.sh prepare' first and carry $DIR"; exit 2; }
    vulkan_visible
    # The test binaries look for shaders/ and tests/fixtures under the folder they were built
    # in: make that path this checkout when it is another machine's.
    local built
    built=$(cat "$DIR/built_in.txt" 2>/dev/null || true)
    if [ -n "$built" ] && [ ! -e "$built" ]; then
        mkdir -p "$(dirname "$built")" && ln -s "$PWD" "$built"
    fi
    local start=$SECONDS
    timeout 60 "$DIR/bin/whet" devices 2>&1 | tee "$out/devices.txt"
    # Kernels, then model steps: a timeout in one keeps the other's records.
    timeout 150 "$DIR/bin/whet" bench --repeats 5 --only matmul,linear,bandwidth,softmax,conv,attention,dispatch \
        --json "$out/bench_kernels.json" 2>&1 | tee "$out/bench_kernels.txt"
    timeout 180 "$DIR/bin/whet" bench --repeats 5 --only _step_ --json "$out/bench_steps.json" 2>&1 |
        tee "$out/bench_steps.txt"
    : >"$out/tests.txt"
    for t in $TESTS; do
        [ -x "$DIR/bin/$t" ] || continue
        echo "== $t" | tee -a "$out/tests.txt"
        timeout 120 "$DIR/bin/$t" --test-threads 4 2>&1 | grep -E "^test |test result|panicked|SKIPPED" >>"$out/tests.txt"
        grep -E "test result" "$out/tests.txt" | tail -1
    done
    echo "gpu_check: $((SECONDS - start)) s; results in $out"
    grep -E "FAILED|panicked" "$out/tests.txt" && exit 1
    exit 0
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: tools/gpu_check.sh prepare|run"; exit 2 ;;
esac
