//! `whet bench`: run the cases, print each record as it lands and a table at the end; or
//! compare two saved runs.

use std::path::Path;

use whet::bench::{self, BenchOptions, Report};
use whet::Engine;

pub fn bench(opts: BenchOptions, json: Option<&Path>) -> whet::Result<()> {
    let engine = Engine::new(whet::EngineOptions::from_env()?)?;
    let info = engine.adapter_info();
    println!("whet bench on {} ({:?}, {} {})", info.name, info.backend, info.driver, info.driver_info);
    let report = bench::run(&engine, &opts, |r| eprintln!("  {} {}", r.name, bench::seconds(r.median_s)))?;
    print!("{}", bench::table(&report.records));
    // With WHET_PROFILE set every dispatch ran alone and was timed: where the time went.
    let profile = engine.profile();
    if !profile.is_empty() {
        let total: f64 = profile.iter().map(|p| p.2).sum();
        println!(
            "kernels by time (WHET_PROFILE: each dispatch alone; the medians above are not comparable):"
        );
        for (kernel, n, secs) in profile.iter().take(20) {
            println!("  {:>5.1}%  {secs:>8.3} s  {n:>7} x  {kernel}", 100.0 * secs / total);
        }
    }
    if let Some(path) = json {
        let text = report.to_json()?;
        std::fs::write(path, text).map_err(|e| whet::Error::io(path, e))?;
        println!("records: {}", path.display());
    }
    Ok(())
}

pub fn compare(a: &Path, b: &Path) -> whet::Result<()> {
    let (ra, rb) = (Report::read(a)?, Report::read(b)?);
    print!("{}", bench::compare(&ra, &rb));
    Ok(())
}
