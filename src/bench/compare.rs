//! `whet bench --compare a.json b.json`: two machines or two versions side by side.

use super::{seconds, Report};

/// Cases measured in both files with B's speed relative to A's, and those in one file only.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// (name, A's median s, B's median s, speed-up of B over A = A's median / B's median).
    pub both: Vec<(String, f64, f64, f64)>,
    pub only_a: Vec<String>,
    pub only_b: Vec<String>,
    /// The two adapters, as "name (backend, driver)".
    pub adapters: (String, String),
}

/// Matches the records of `a` and `b` by name, in `a`'s order.
pub fn compare(a: &Report, b: &Report) -> Comparison {
    let find = |r: &Report, name: &str| r.records.iter().find(|x| x.name == name).map(|x| x.median_s);
    let both = a
        .records
        .iter()
        .filter_map(|ra| find(b, &ra.name).map(|mb| (ra.name.clone(), ra.median_s, mb, ra.median_s / mb)))
        .collect();
    let missing = |from: &Report, other: &Report| {
        from.records.iter().filter(|r| find(other, &r.name).is_none()).map(|r| r.name.clone()).collect()
    };
    let label = |r: &Report| format!("{} ({}, {})", r.adapter.adapter, r.adapter.backend, r.adapter.driver);
    Comparison { both, only_a: missing(a, b), only_b: missing(b, a), adapters: (label(a), label(b)) }
}

impl std::fmt::Display for Comparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "A: {}\nB: {}", self.adapters.0, self.adapters.1)?;
        writeln!(f, "{:<34} {:>11} {:>11}  B vs A", "case", "A median", "B median")?;
        for (name, ma, mb, speedup) in &self.both {
            let verdict = if *speedup >= 1.0 { "faster" } else { "slower" };
            let factor = if *speedup >= 1.0 { *speedup } else { 1.0 / speedup };
            writeln!(f, "{name:<34} {:>11} {:>11}  {factor:.2}x {verdict}", seconds(*ma), seconds(*mb))?;
        }
        for (side, names) in [("A", &self.only_a), ("B", &self.only_b)] {
            if !names.is_empty() {
                writeln!(f, "only in {side}: {}", names.join(", "))?;
            }
        }
        Ok(())
    }
}
