//! include/whet.h is generated from the sources and checked in: this test regenerates it and
//! fails when the checked-in file differs (a changed signature without a new header).

use std::path::Path;

#[test]
fn the_checked_in_header_is_what_cbindgen_makes_of_the_sources() {
    let crate_dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(Path::new(crate_dir).join("cbindgen.toml")).unwrap();
    let mut made = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen reads capi/src")
        .write(&mut made);
    let path = Path::new(crate_dir).join("../include/whet.h");
    if std::env::var_os("WHET_BLESS_HEADER").is_some() {
        std::fs::write(&path, &made).unwrap();
        return;
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    assert!(
        checked_in == made,
        "include/whet.h is stale; regenerate it with WHET_BLESS_HEADER=1 cargo test -p whet-capi --test header\n\
         --- generated ---\n{}",
        String::from_utf8_lossy(&made)
    );
    for f in ["whet_engine_new", "whet_train", "whet_model_predict", "whet_last_error", "whet_string_free"] {
        assert!(String::from_utf8_lossy(&made).contains(f), "{f} missing from the header");
    }
}
