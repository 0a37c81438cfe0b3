//! The `hub` feature: a model id missing from the local cache is downloaded into it, from a
//! fake Hub on a local port (tests never use the network). The fake answers the two requests
//! hf-hub makes: the repository's file list (`/api/models/ORG/NAME/revision/REV`) and ranged
//! file reads (`/ORG/NAME/resolve/REV/FILE`, with `etag`, `x-repo-commit` and `Content-Range`).
//! Checked: only the files whet reads are fetched, the cache then resolves offline to a model
//! equal to the source folder's, a second resolve asks the fake nothing, and a repository
//! without config.json is refused by name.
#![cfg(feature = "hub")]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use whet::models::zoo::{self, ModelKind};
use whet::nn::Mode;
use whet::weights::hf_cache::{resolve_model_path, HfCache};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A fake Hub serving `files` as `org/tiny@main`; returns its address and the request log.
fn fake_hub(files: BTreeMap<String, Vec<u8>>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut range = None;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.strip_prefix("Range: bytes=").or_else(|| h.strip_prefix("range: bytes=")) {
                    range = Some(v.trim().to_string());
                }
            }
            seen.lock().unwrap().push(path.clone());
            let _ = stream.write_all(&respond(&files, &path, range.as_deref()));
        }
    });
    (addr, log)
}

/// The fake's answer to `GET path` with an optional `Range: bytes=range`.
fn respond(files: &BTreeMap<String, Vec<u8>>, path: &str, range: Option<&str>) -> Vec<u8> {
    if path == "/api/models/org/tiny/revision/main" {
        let siblings: Vec<serde_json::Value> =
            files.keys().map(|f| serde_json::json!({ "rfilename": f })).collect();
        let body = serde_json::json!({ "sha": COMMIT, "siblings": siblings }).to_string();
        return reply("200 OK", "", body.as_bytes());
    }
    let Some(file) = path.strip_prefix("/org/tiny/resolve/main/").and_then(|f| files.get(f)) else {
        return reply("404 Not Found", "", b"no such file");
    };
    let (start, end) = match range.and_then(|r| r.split_once('-')) {
        Some((s, e)) => (s.parse().unwrap_or(0), e.parse().unwrap_or(file.len() - 1)),
        None => (0, file.len() - 1),
    };
    let etag =
        format!("{:016x}{:016x}", file.len(), file.iter().fold(7u64, |h, &b| h.wrapping_mul(31) ^ b as u64));
    let headers = format!(
        "etag: \"{etag}\"\r\nx-repo-commit: {COMMIT}\r\nContent-Range: bytes {start}-{end}/{}\r\n",
        file.len()
    );
    reply("206 Partial Content", &headers, &file[start..=end])
}

fn reply(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out =
        format!("HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n", body.len())
            .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The tiny Qwen2 of the families fixture, plus files whet must not fetch.
fn repository() -> (std::path::PathBuf, BTreeMap<String, Vec<u8>>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/families/qwen2_tiny");
    let mut files = BTreeMap::new();
    for f in ["config.json", "model.safetensors"] {
        files.insert(f.to_string(), std::fs::read(dir.join(f)).unwrap());
    }
    for f in ["README.md", "tf_model.h5", "onnx/model.onnx", "pytorch_model.bin"] {
        files.insert(f.to_string(), b"not for whet".to_vec());
    }
    (dir, files)
}

#[test]
fn a_missing_model_is_downloaded_into_the_cache_once() {
    let case = "a_missing_model_is_downloaded_into_the_cache_once";
    let Some((_g, e)) = common::gpu("hub_download", case) else { return };
    let (source, files) = repository();
    let (addr, log) = fake_hub(files);
    let cache = tempfile::tempdir().unwrap();
    let offline = HfCache::new(cache.path());
    let err =
        resolve_model_path(Path::new("org/tiny"), cache.path(), Some(&offline)).unwrap_err().to_string();
    assert!(err.contains("is not in the Hugging Face cache"), "{err}");
    assert!(log.lock().unwrap().is_empty(), "an offline cache asked the Hub");

    let online = offline.online(addr);
    let dir = resolve_model_path(Path::new("org/tiny"), cache.path(), Some(&online)).unwrap();
    assert!(dir.ends_with(format!("models--org--tiny/snapshots/{COMMIT}")), "{}", dir.display());
    let asked: Vec<String> = log.lock().unwrap().clone();
    for skipped in ["README.md", "tf_model.h5", "onnx", "pytorch_model.bin"] {
        assert!(!asked.iter().any(|p| p.contains(skipped)), "{skipped} was fetched: {asked:?}");
    }
    let fetched = std::fs::read(dir.join("model.safetensors")).unwrap();
    assert_eq!(fetched, std::fs::read(source.join("model.safetensors")).unwrap());

    // The downloaded folder is the model the source folder is.
    let kind = ModelKind::detect(&dir).unwrap().unwrap();
    let ids: Vec<u32> = (0..6).collect();
    let logits = |p: &Path| {
        let (mut m, _) = zoo::load(&e, p, kind, None, 0).unwrap();
        m.as_causal_lm(Mode::EVAL).unwrap().logits(&ids, 1, 6, None).unwrap().to_vec().unwrap()
    };
    assert_eq!(logits(&dir), logits(&source));

    // A second resolve is answered by the cache alone.
    let before = log.lock().unwrap().len();
    assert_eq!(resolve_model_path(Path::new("org/tiny"), cache.path(), Some(&online)).unwrap(), dir);
    assert_eq!(log.lock().unwrap().len(), before, "the cached model was fetched again");
}

#[test]
fn a_repository_without_config_json_is_refused_by_name() {
    let mut files = repository().1;
    files.remove("config.json");
    let (addr, _) = fake_hub(files);
    let cache = tempfile::tempdir().unwrap();
    let online = HfCache::new(cache.path()).online(addr);
    let err = resolve_model_path(Path::new("org/tiny"), cache.path(), Some(&online)).unwrap_err().to_string();
    assert!(err.contains("org/tiny@main") && err.contains("no config.json"), "{err}");
}

#[test]
fn safetensors_are_preferred_and_other_formats_left_out() {
    use whet::weights::hub::wanted_files;
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let all = names(&[
        "config.json",
        "model.safetensors",
        "pytorch_model.bin",
        "tf_model.h5",
        "onnx/model.onnx",
        "tokenizer.json",
        "vocab.txt",
        "README.md",
    ]);
    assert_eq!(wanted_files(&all), ["config.json", "model.safetensors", "tokenizer.json", "vocab.txt"]);
    let bin_only = names(&["config.json", "pytorch_model.bin", "pytorch_model.bin.index.json"]);
    assert_eq!(wanted_files(&bin_only), bin_only);
}
