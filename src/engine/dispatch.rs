//! Recording one dispatch, and the workgroup arithmetic for it in one place.
//!
//! A dispatch binds the per-call uniform slot and its storage buffers (the bind group comes
//! from `bind_cache.rs`) and joins the batch (`batch.rs`); nothing runs until the batch is
//! submitted. With [`EngineOptions::profile`](super::EngineOptions::profile) each dispatch is
//! instead submitted and timed alone.
//!
//! WebGPU caps each dispatch dimension at `max_compute_workgroups_per_dimension` (65,535 by
//! default). A 1-D kernel over more groups than that is folded into a 2-D grid: `x` stays at the
//! cap and `y` counts the rows. Shaders recover the linear group index with `prelude.wgsl`'s
//! `linear_group(wid, nwg)`, which every 1-D kernel uses, so folding never changes results.

use std::sync::atomic::Ordering;

use super::pipeline::LayoutKey;
use super::{lock, Binding, Engine, Kernel, RING_SLOTS, UNIFORM_SLOT};
use crate::error::{Error, Result};

/// Workgroups for a 1-D kernel covering `items` with `per_group` items per workgroup.
pub fn groups_1d(items: u64, per_group: u64, max_per_dim: u32) -> Result<[u32; 3]> {
    let groups = items.div_ceil(per_group.max(1));
    fold(groups, max_per_dim)
}

/// Fold a linear workgroup count into (x, y, 1) with x, y <= `max_per_dim`.
pub fn fold(groups: u64, max_per_dim: u32) -> Result<[u32; 3]> {
    let max = max_per_dim as u64;
    if groups <= max {
        return Ok([groups as u32, 1, 1]);
    }
    let y = groups.div_ceil(max);
    if y > max {
        return Err(Error::arg(
            "dispatch",
            format!("{groups} workgroups exceed the adapter's {max}x{max} grid"),
        ));
    }
    Ok([max as u32, y as u32, 1])
}

impl Engine {
    /// Record one dispatch. `uniform` holds the kernel's per-call scalars (binding 0); the
    /// storage bindings follow as bindings 1..=n in order.
    pub(crate) fn dispatch(
        &self,
        kernel: &Kernel,
        uniform: &[u8],
        bindings: &[Binding<'_>],
        groups: [u32; 3],
    ) -> Result<()> {
        self.check_alive()?;
        if groups.contains(&0) || self.is_dry() {
            return Ok(());
        }
        debug_assert!(uniform.len() as u64 <= UNIFORM_SLOT);
        let layout: LayoutKey = bindings.iter().map(|b| b.read_only).collect();
        let (pipeline, bgl) = self.pipeline(kernel, layout)?;
        let bind_group = self.bind_group(&bgl, bindings);
        let t0 = match &self.0.profile {
            Some(_) => {
                self.sync()?;
                Some(std::time::Instant::now())
            }
            None => None,
        };
        let full = {
            let mut batch = lock(&self.0.batch);
            batch.push(pipeline, bind_group, uniform, groups, self.0.uniform_align);
            batch.len() as u64 >= RING_SLOTS
        };
        self.0.dispatches.fetch_add(1, Ordering::Relaxed);
        if let (Some(t0), Some(prof)) = (t0, &self.0.profile) {
            self.sync()?;
            let secs = t0.elapsed().as_secs_f64();
            let key = format!("{}:{}{:?}", kernel.file.name, kernel.entry, kernel.constants);
            let mut map = lock(prof);
            let e = map.entry(key).or_insert((0, 0.0));
            e.0 += 1;
            e.1 += secs;
        } else if full {
            self.flush()?;
        }
        Ok(())
    }

    /// Per-kernel (dispatches, seconds) since the engine was made, slowest first; empty unless
    /// the engine was opened with [`EngineOptions::profile`](super::EngineOptions::profile).
    pub fn profile(&self) -> Vec<(String, u64, f64)> {
        let Some(p) = &self.0.profile else { return Vec::new() };
        let mut v: Vec<_> = lock(p).iter().map(|(k, (n, s))| (k.clone(), *n, *s)).collect();
        v.sort_by(|a, b| b.2.total_cmp(&a.2));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_past_the_per_dimension_cap() {
        assert_eq!(groups_1d(64 * 65_535, 64, 65_535).unwrap(), [65_535, 1, 1]);
        assert_eq!(groups_1d(64 * 65_536, 64, 65_535).unwrap(), [65_535, 2, 1]);
        assert_eq!(groups_1d(0, 64, 65_535).unwrap(), [0, 1, 1]);
        assert!(fold(65_536u64 * 65_536, 65_535).is_err());
    }
}
