//! `whet bench`: what this adapter does with whet's kernels and model steps, as numbers a user
//! can keep and compare across machines and versions.
//!
//! Every case is prepared once and run once to warm up (shaders compiled, buffers pooled); then
//! the timing rounds run every case once per round, in turn, so a host that slows down or speeds
//! up during the run (shared machines drift by ±25%) moves all cases alike. A record is the
//! median over the rounds with the fastest and slowest round beside it, plus the rate the
//! median gives (GFLOP/s, GB/s, samples/s, dispatches/s). Model steps use the architectures'
//! real shapes with seeded random weights: a step's time does not depend on the values, and
//! the command then needs no download.

mod compare;
mod kernels;
mod steps;

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::{Error, Result};

pub use compare::{compare, Comparison};
pub use kernels::values;
pub use steps::{minilm_config, smollm2_config, Lite0Shapes};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Small sizes and the two cheapest model steps (under a minute on lavapipe).
    pub quick: bool,
    /// Timing rounds (every case once per round).
    pub repeats: usize,
    /// Run only the cases whose name contains one of these (empty: all).
    pub only: Vec<String>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions { quick: false, repeats: 5, only: Vec::new() }
    }
}

/// One measured case; `value` is the rate at the median time, in `unit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub repeats: usize,
    pub value: Option<f64>,
    pub unit: Option<String>,
}

/// The machine the records were measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterRecord {
    pub adapter: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub wgpu: String,
    pub whet: String,
    pub max_storage_buffer_binding_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub subgroup_size: Option<u32>,
}

impl AdapterRecord {
    pub fn of(engine: &Engine) -> AdapterRecord {
        let info = engine.adapter_info();
        let limits = engine.limits();
        AdapterRecord {
            adapter: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            wgpu: WGPU_VERSION.into(),
            whet: env!("CARGO_PKG_VERSION").into(),
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            subgroup_size: engine.subgroup_size(),
        }
    }
}

/// The wgpu release whet is built against (Cargo.toml's requirement).
const WGPU_VERSION: &str = "30";

/// A bench run: the adapter and every record, in the order the cases ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub adapter: AdapterRecord,
    pub records: Vec<Record>,
}

/// One entry of the JSON list: the adapter record or a measurement.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Entry {
    Adapter { adapter: AdapterRecord },
    Record(Record),
}

impl Report {
    /// The JSON list: `{"adapter": {...}}` first, then the records.
    pub fn to_json(&self) -> Result<String> {
        let mut list = vec![Entry::Adapter { adapter: self.adapter.clone() }];
        list.extend(self.records.iter().cloned().map(Entry::Record));
        serde_json::to_string_pretty(&list).map_err(|e| Error::arg("bench", e.to_string()))
    }

    /// Reads what [`Report::to_json`] wrote; an error names the file and what is wrong.
    pub fn read(path: &Path) -> Result<Report> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let bad = |message: String| Error::Format { path: path.display().to_string(), line: None, message };
        let list: Vec<Entry> = serde_json::from_str(&text).map_err(|e| Error::Format {
            path: path.display().to_string(),
            line: Some(e.line()),
            message: format!("not a whet bench JSON list: {e}"),
        })?;
        let mut adapter = None;
        let mut records = Vec::new();
        for entry in list {
            match entry {
                Entry::Adapter { adapter: a } if adapter.is_none() => adapter = Some(a),
                Entry::Adapter { .. } => return Err(bad("two adapter records".into())),
                Entry::Record(r) => records.push(r),
            }
        }
        let adapter = adapter.ok_or_else(|| bad("no adapter record".into()))?;
        Ok(Report { adapter, records })
    }
}

/// A prepared case: `run` does the work once and waits for the device.
pub(crate) struct Case<'a> {
    pub name: String,
    /// Units of work per run (FLOPs / 1e9, bytes / 1e9, samples, dispatches) and their rate's
    /// unit; `None` for a plain time.
    pub work: Option<(f64, &'static str)>,
    pub run: Box<dyn FnMut() -> Result<()> + 'a>,
}

/// Runs every case (filtered by `opts.only`): prepared, warmed up, then timed in interleaved
/// rounds. `shown` gets each record as soon as it is known.
pub fn run(engine: &Engine, opts: &BenchOptions, mut shown: impl FnMut(&Record)) -> Result<Report> {
    if opts.repeats == 0 {
        return Err(Error::arg("bench", "repeats must be >= 1"));
    }
    let wanted = |name: &str| opts.only.is_empty() || opts.only.iter().any(|o| name.contains(o.as_str()));
    let mut records = Vec::new();
    // Kernels first, then model steps; each group is timed on its own so a few-second model
    // step does not sit between two microsecond kernels of the same round.
    for group in [kernels::cases(engine, opts.quick, &wanted)?, steps::cases(engine, opts.quick, &wanted)?] {
        for r in time_interleaved(group, opts.repeats)? {
            shown(&r);
            records.push(r);
        }
    }
    Ok(Report { adapter: AdapterRecord::of(engine), records })
}

fn time_interleaved(mut cases: Vec<Case>, repeats: usize) -> Result<Vec<Record>> {
    for c in cases.iter_mut() {
        (c.run)()?;
    }
    let mut times = vec![Vec::with_capacity(repeats); cases.len()];
    for _ in 0..repeats {
        for (c, t) in cases.iter_mut().zip(times.iter_mut()) {
            let t0 = Instant::now();
            (c.run)()?;
            t.push(t0.elapsed().as_secs_f64());
        }
    }
    Ok(cases.iter().zip(times).map(|(c, t)| record(&c.name, c.work, t)).collect())
}

fn record(name: &str, work: Option<(f64, &str)>, mut times: Vec<f64>) -> Record {
    times.sort_by(f64::total_cmp);
    let median = median(&times);
    Record {
        name: name.to_string(),
        median_s: median,
        min_s: times.first().copied().unwrap_or(f64::NAN),
        max_s: times.last().copied().unwrap_or(f64::NAN),
        repeats: times.len(),
        value: work.map(|(w, _)| w / median),
        unit: work.map(|(_, u)| u.to_string()),
    }
}

/// The middle of sorted values (the mean of the two middle ones for an even count).
fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The screen table: name, median, spread, rate.
pub fn table(records: &[Record]) -> String {
    let mut out = format!("{:<34} {:>11} {:>23}  {}\n", "case", "median", "min .. max", "rate");
    for r in records {
        let rate = match (r.value, &r.unit) {
            (Some(v), Some(u)) => format!("{v:.3} {u}"),
            _ => String::new(),
        };
        out += &format!(
            "{:<34} {:>11} {:>23}  {rate}\n",
            r.name,
            seconds(r.median_s),
            format!("{} .. {}", seconds(r.min_s), seconds(r.max_s))
        );
    }
    out
}

/// 1.23 s, 45.6 ms, 789 µs.
pub fn seconds(s: f64) -> String {
    match s {
        s if s >= 1.0 => format!("{s:.3} s"),
        s if s >= 1e-3 => format!("{:.2} ms", s * 1e3),
        s => format!("{:.1} µs", s * 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_the_median_with_its_spread_and_rate() {
        let r = record("matmul", Some((2.0, "GFLOP/s")), vec![0.5, 0.1, 0.2, 0.3]);
        assert_eq!((r.min_s, r.max_s, r.repeats), (0.1, 0.5, 4));
        assert!((r.median_s - 0.25).abs() < 1e-12);
        assert!((r.value.unwrap() - 8.0).abs() < 1e-9);
        assert_eq!(record("x", None, vec![3.0, 1.0, 2.0]).median_s, 2.0);
    }

    #[test]
    fn times_read_in_the_unit_that_fits() {
        assert_eq!(seconds(1.5), "1.500 s");
        assert_eq!(seconds(0.0456), "45.60 ms");
        assert_eq!(seconds(0.000789), "789.0 µs");
    }
}
