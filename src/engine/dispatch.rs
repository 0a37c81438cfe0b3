//! Workgroup arithmetic in one place.
//!
//! WebGPU caps each dispatch dimension at `max_compute_workgroups_per_dimension` (65,535 by
//! default). A 1-D kernel over more groups than that is folded into a 2-D grid: `x` stays at the
//! cap and `y` counts the rows. Shaders recover the linear group index with `prelude.wgsl`'s
//! `linear_group(wid, nwg)`, which every 1-D kernel uses, so folding never changes results.

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
