//! The run log: one row per optimizer step (taken or skipped) in `out_dir/log.jsonl` and
//! `out_dir/log.csv`, with the evaluation metrics on the rows where the driver evaluated.
//!
//! The CSV has one column per metric seen so far; when an evaluation brings a new metric the
//! CSV is rewritten with the wider header (rare: usually once, at the first evaluation). On
//! resume, rows after the resumed step (written by the interrupted run after its last
//! checkpoint) are dropped, so the log tells the story of the weights that exist.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One logged step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRow {
    /// Optimizer steps taken after this row's step.
    pub step: u64,
    pub epoch: usize,
    /// Mean training loss of the step (`None` when non-finite).
    pub loss: Option<f64>,
    /// Base learning rate the step used.
    pub lr: f64,
    /// Global gradient norm before clipping (`None` when non-finite).
    pub grad_norm: Option<f64>,
    /// Training seconds since the run began (across resumes).
    pub secs: f64,
    /// The step's training items when it was skipped for a non-finite loss or gradient.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_items: Vec<usize>,
    /// The loss scale the step ran with (runs with dynamic loss scaling only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<f64>,
    /// Evaluation metrics, when the driver evaluated after this step.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, Option<f64>>,
}

/// Appends rows to both log files.
pub struct RunLog {
    csv: PathBuf,
    jsonl: PathBuf,
    rows: Vec<LogRow>,
    columns: BTreeSet<String>,
}

const FIXED: [&str; 7] = ["step", "epoch", "loss", "lr", "grad_norm", "secs", "skipped_items"];

fn opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

impl RunLog {
    /// Open the logs of `out_dir`. `keep_until`: on resume, the step resumed from (earlier rows
    /// are kept, later ones dropped); `None` starts both files afresh.
    pub fn open(out_dir: &Path, keep_until: Option<u64>) -> Result<RunLog> {
        let csv = out_dir.join("log.csv");
        let jsonl = out_dir.join("log.jsonl");
        let mut rows = Vec::new();
        if let Some(limit) = keep_until {
            if let Ok(f) = File::open(&jsonl) {
                for line in BufReader::new(f).lines() {
                    let line = line.map_err(|e| Error::io(&jsonl, e))?;
                    // A line cut short by a kill is dropped, not fatal: the log is a record.
                    if let Ok(r) = serde_json::from_str::<LogRow>(&line) {
                        if r.step <= limit {
                            rows.push(r);
                        }
                    }
                }
            }
        }
        let columns = rows.iter().flat_map(|r| r.metrics.keys().cloned()).collect();
        let mut log = RunLog { csv, jsonl, rows: Vec::new(), columns };
        log.rows = rows;
        log.rewrite()?;
        Ok(log)
    }

    /// Rows written so far (this run and the kept part of earlier ones).
    pub fn rows(&self) -> &[LogRow] {
        &self.rows
    }

    fn csv_line(&self, r: &LogRow) -> Result<Vec<u8>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let items = r.skipped_items.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(" ");
        let mut rec = vec![
            r.step.to_string(),
            r.epoch.to_string(),
            opt(r.loss),
            r.lr.to_string(),
            opt(r.grad_norm),
            format!("{:.3}", r.secs),
            items,
        ];
        rec.extend(self.columns.iter().map(|c| opt(r.metrics.get(c).copied().flatten())));
        w.write_record(&rec).map_err(|e| Error::arg("log", e.to_string()))?;
        w.into_inner().map_err(|e| Error::arg("log", e.to_string()))
    }

    fn header(&self) -> Result<Vec<u8>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut h: Vec<String> = FIXED.iter().map(|s| s.to_string()).collect();
        h.extend(self.columns.iter().cloned());
        w.write_record(&h).map_err(|e| Error::arg("log", e.to_string()))?;
        w.into_inner().map_err(|e| Error::arg("log", e.to_string()))
    }

    /// Rewrite both files from the rows in memory.
    fn rewrite(&mut self) -> Result<()> {
        let mut csv = self.header()?;
        let mut jsonl = Vec::new();
        for r in &self.rows {
            csv.extend(self.csv_line(r)?);
            jsonl.extend(serde_json::to_vec(r).map_err(|e| Error::arg("log", e.to_string()))?);
            jsonl.push(b'\n');
        }
        std::fs::write(&self.csv, csv).map_err(|e| Error::io(&self.csv, e))?;
        std::fs::write(&self.jsonl, jsonl).map_err(|e| Error::io(&self.jsonl, e))
    }

    /// Append one row to both files.
    pub fn push(&mut self, row: LogRow) -> Result<()> {
        let new_cols = row.metrics.keys().any(|k| !self.columns.contains(k));
        self.rows.push(row);
        if new_cols {
            let r = self.rows.last().map(|r| r.metrics.keys().cloned().collect::<Vec<_>>());
            self.columns.extend(r.unwrap_or_default());
            return self.rewrite();
        }
        let Some(r) = self.rows.last() else { return Ok(()) };
        let line = self.csv_line(r)?;
        let mut json = serde_json::to_vec(r).map_err(|e| Error::arg("log", e.to_string()))?;
        json.push(b'\n');
        append(&self.csv, &line)?;
        append(&self.jsonl, &json)
    }
}

fn append(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new().append(true).create(true).open(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))
}
