//! Reading back numbers that JSON cannot hold. serde_json writes a non-finite `f64` (an interval
//! end left `NaN` because a metric was undefined on every resample, say) as `null`, and would
//! then refuse that `null` when reading the file back. These helpers read `null` as `NaN`, so
//! every results.json that [`CompareResults::save_json`](super::CompareResults::save_json)
//! writes can be loaded again.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use crate::eval::Interval;

/// An `f64` where `null` stands for `NaN`.
pub(crate) fn f64_or_nan<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// A map of `f64` where `null` stands for `NaN`.
pub(crate) fn f64_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
    let raw = BTreeMap::<String, Option<f64>>::deserialize(d)?;
    Ok(raw.into_iter().map(|(k, v)| (k, v.unwrap_or(f64::NAN))).collect())
}

/// A list of `f64` where `null` stands for `NaN`.
pub(crate) fn f64_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    let raw = Vec::<Option<f64>>::deserialize(d)?;
    Ok(raw.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

/// [`Interval`] as written by its `Serialize` derive; it has no `Deserialize` of its own.
#[derive(Deserialize)]
struct IntervalRepr {
    point: Option<f64>,
    lo: Option<f64>,
    hi: Option<f64>,
    level: Option<f64>,
}

impl From<IntervalRepr> for Interval {
    fn from(r: IntervalRepr) -> Interval {
        let nan = f64::NAN;
        Interval {
            point: r.point.unwrap_or(nan),
            lo: r.lo.unwrap_or(nan),
            hi: r.hi.unwrap_or(nan),
            level: r.level.unwrap_or(nan),
        }
    }
}

/// One [`Interval`].
pub(crate) fn interval<'de, D: Deserializer<'de>>(d: D) -> Result<Interval, D::Error> {
    Ok(IntervalRepr::deserialize(d)?.into())
}

/// A map of [`Interval`]s keyed by metric name.
pub(crate) fn interval_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Interval>, D::Error> {
    let raw = BTreeMap::<String, IntervalRepr>::deserialize(d)?;
    Ok(raw.into_iter().map(|(k, v)| (k, v.into())).collect())
}
