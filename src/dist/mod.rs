//! Data-parallel training across processes: who this process is among the run's ranks, and the
//! few collectives the driver needs (broadcast, all-reduce, barrier, abort).
//!
//! A [`Cluster`] is one process ([`Cluster::solo`], every run's default) or the ranks of an MPI
//! job (`mpirun -np N whet train`, or `srun` under SLURM) when whet is built with the `mpi`
//! feature. MPI is the distributed engine here, not a home-made one: clusters already run it,
//! and it needs no device-pointer sharing, which wgpu cannot offer. Gradients cross ranks
//! through host memory (the arena's pages are read back, all-reduced, written back), which is
//! what every vendor's GPU allows.
//!
//! What stays the same on N ranks as on one process is the driver's business
//! ([`crate::train::driver`]): the global batch, the samples of each step, dropout and
//! augmentation keyed by the global sample, the update. This module only moves numbers.

#[cfg(feature = "mpi")]
mod mpi_world;

use std::ops::Range;
use std::sync::Arc;

use crate::error::{Error, Result};

/// The ranks of a run: one process, or an MPI job.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

enum Inner {
    Solo,
    #[cfg(feature = "mpi")]
    Mpi(mpi_world::MpiWorld),
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cluster(rank {} of {})", self.rank(), self.size())
    }
}

impl Default for Cluster {
    fn default() -> Cluster {
        Cluster::solo()
    }
}

/// Variables by which launchers tell a process the job's size: Open MPI's `mpirun`, MPICH and
/// Intel MPI (PMI), PMIx launchers, and SLURM's `srun`.
const SIZE_VARS: [&str; 4] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"];
/// ... and the process's rank among the job's processes on its own machine.
const LOCAL_RANK_VARS: [&str; 4] =
    ["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK", "SLURM_LOCALID"];

fn env_usize(vars: &[&str]) -> Option<usize> {
    vars.iter().find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
}

/// The job size a launcher announced, when this process was started by one (`srun` only counts
/// inside a job step, where `SLURM_STEP_ID` is set: a batch script's own shell is not a rank).
pub fn launcher_size() -> Option<usize> {
    let slurm_step = std::env::var_os("SLURM_STEP_ID").is_some();
    SIZE_VARS
        .iter()
        .filter(|v| **v != "SLURM_NTASKS" || slurm_step)
        .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
}

/// This process's rank on its machine, as the launcher announced it: the CLI opens the
/// `local_rank`-th adapter of the best kind, so the ranks of one machine share its GPUs.
pub fn local_rank() -> Option<usize> {
    env_usize(&LOCAL_RANK_VARS)
}

impl Cluster {
    /// One process: every collective is the identity.
    pub fn solo() -> Cluster {
        Cluster { inner: Arc::new(Inner::Solo) }
    }

    /// The ranks the launcher started (the CLI's entry; the library itself reads no
    /// environment): MPI when a launcher announced more than one process, else [`Cluster::solo`].
    /// A job of several processes with a whet built without the `mpi` feature is an error: its
    /// ranks would otherwise train N independent copies into one folder.
    pub fn from_env() -> Result<Cluster> {
        match launcher_size() {
            Some(n) if n > 1 => Self::mpi(n),
            _ => Ok(Cluster::solo()),
        }
    }

    #[cfg(feature = "mpi")]
    fn mpi(_announced: usize) -> Result<Cluster> {
        Ok(Cluster { inner: Arc::new(Inner::Mpi(mpi_world::MpiWorld::init()?)) })
    }

    #[cfg(not(feature = "mpi"))]
    fn mpi(announced: usize) -> Result<Cluster> {
        Err(Error::arg(
            "distributed",
            format!(
                "started as one of {announced} processes by an MPI launcher, but this whet was built \
                 without the `mpi` feature (cargo build --release --features mpi)"
            ),
        ))
    }

    /// This process's rank, 0-based.
    pub fn rank(&self) -> usize {
        match &*self.inner {
            Inner::Solo => 0,
            #[cfg(feature = "mpi")]
            Inner::Mpi(w) => w.rank(),
        }
    }

    /// Number of ranks.
    pub fn size(&self) -> usize {
        match &*self.inner {
            Inner::Solo => 1,
            #[cfg(feature = "mpi")]
            Inner::Mpi(w) => w.size(),
        }
    }

    /// Rank 0 writes the run folder; the others only compute.
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// More than one rank.
    pub fn is_distributed(&self) -> bool {
        self.size() > 1
    }

    /// This rank's contiguous share of `n` items (the first `n % size` ranks take one more), in
    /// rank order, so the shares laid end to end are `0..n`.
    pub fn share(&self, n: usize) -> Range<usize> {
        share(n, self.rank(), self.size())
    }

    /// Rank 0's `data` on every rank.
    #[cfg_attr(not(feature = "mpi"), allow(unused_variables))]
    pub fn broadcast(&self, data: &mut [f32]) -> Result<()> {
        match &*self.inner {
            Inner::Solo => Ok(()),
            #[cfg(feature = "mpi")]
            Inner::Mpi(w) => w.broadcast(data),
        }
    }

    /// Rank 0's bytes on every rank (any length).
    pub fn broadcast_bytes(&self, data: Vec<u8>) -> Result<Vec<u8>> {
        match &*self.inner {
            Inner::Solo => Ok(data),
            #[cfg(feature = "mpi")]
            Inner::Mpi(w) => w.broadcast_bytes(data),
        }
    }

    /// The element-wise sum of every rank's `data`, on every rank.
    #[cfg_attr(not(feature = "mpi"), allow(unused_variables))]
    pub fn all_reduce_sum(&self, data: &mut [f32]) -> Result<()> {
        match &*self.inner {
            Inner::Solo => Ok(()),
            #[cfg(feature = "mpi")]
            Inner::Mpi(w) => w.all_reduce_sum(data),
        }
    }

    /// Every rank's bytes (any lengths), in rank order, on every rank.
    pub fn all_gather_bytes(&self, data: Vec<u8>) -> Result<Vec<Vec<u8>>> {
        match &*self.inner {
            Inner::Solo => Ok(vec![data]),
            #[cfg(feature = "mpi")]
            Inner::Mpi(w) => w.all_gather_bytes(data),
        }
    }

    /// Every rank's `values` laid end to end in rank order, on every rank (shares of a split
    /// gathered back into item order).
    pub fn gather_f64(&self, values: &[f64]) -> Result<Vec<f64>> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let parts = self.all_gather_bytes(bytes)?;
        let mut all = Vec::with_capacity(parts.iter().map(Vec::len).sum::<usize>() / 8);
        for part in &parts {
            all.extend(part.chunks_exact(8).map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                f64::from_le_bytes(b)
            }));
        }
        Ok(all)
    }

    /// Every rank's `value`, in rank order, on every rank.
    pub fn all_gather(&self, value: u64) -> Result<Vec<u64>> {
        match &*self.inner {
            Inner::Solo => Ok(vec![value]),
            #[cfg(feature = "mpi")]
            Inner::Mpi(w) => w.all_gather(value),
        }
    }

    /// Whether any rank says `flag` (a stop request, say): every rank gets the same answer.
    pub fn any(&self, flag: bool) -> Result<bool> {
        Ok(self.all_gather(flag as u64)?.iter().any(|&v| v != 0))
    }

    /// Wait until every rank is here.
    pub fn barrier(&self) -> Result<()> {
        match &*self.inner {
            Inner::Solo => Ok(()),
            #[cfg(feature = "mpi")]
            Inner::Mpi(w) => w.barrier(),
        }
    }

    /// End every rank of the job with `code` (MPI_Abort): a failing rank's error must not leave
    /// the others waiting in a collective forever. One process simply exits.
    pub fn abort(&self, code: i32) -> ! {
        match &*self.inner {
            Inner::Solo => std::process::exit(code),
            #[cfg(feature = "mpi")]
            Inner::Mpi(_) => mpi_world::abort(code),
        }
    }

    /// Abort the whole MPI job from where no [`Cluster`] is at hand (a panic hook); outside an
    /// MPI job, exit this process.
    pub fn abort_job(code: i32) -> ! {
        #[cfg(feature = "mpi")]
        if mpi::is_initialized() && !mpi::is_finalized() {
            mpi_world::abort(code);
        }
        std::process::exit(code)
    }

    /// `"rank R of N"` for messages, empty on one process.
    pub fn label(&self) -> String {
        if self.is_distributed() {
            format!("rank {} of {}", self.rank(), self.size())
        } else {
            String::new()
        }
    }
}

/// Seconds Open MPI's `mpirun` waits, after forwarding Ctrl-C or SIGTERM to the ranks, before
/// it kills them, below which a rank cannot be expected to finish its step and write a
/// checkpoint.
const GRACE_SECS: u64 = 10;

/// A note for rank 0 of an Open MPI job whose `mpirun` would kill the ranks too soon after
/// Ctrl-C to save a checkpoint (`odls_base_sigkill_timeout`, 1 s by default; mpirun passes its
/// `--mca` settings to the ranks' environment). `None` elsewhere.
pub fn mpirun_grace_note() -> Option<String> {
    std::env::var_os("OMPI_COMM_WORLD_SIZE")?;
    let grace = std::env::var("OMPI_MCA_odls_base_sigkill_timeout").ok().and_then(|v| v.trim().parse().ok());
    let grace: u64 = grace.unwrap_or(1);
    (grace < GRACE_SECS).then(|| {
        format!(
            "note: mpirun kills the ranks {grace} s after Ctrl-C or SIGTERM, too soon to save a \
             checkpoint; give it time with `mpirun --mca odls_base_sigkill_timeout 60 ...`, or stop \
             the ranks themselves (scancel, pkill -TERM -x whet)"
        )
    })
}

/// Rank `rank`'s contiguous share of `n` items among `size` ranks.
pub fn share(n: usize, rank: usize, size: usize) -> Range<usize> {
    let (base, extra) = (n / size, n % size);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

/// An MPI failure as whet's error.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
fn mpi_error(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::arg("distributed", format!("{what}: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn shares_cover_the_items_once_in_rank_order() {
        for n in 0..20 {
            for size in 1..6 {
                let shares: Vec<_> = (0..size).map(|r| share(n, r, size)).collect();
                assert_eq!(shares[0].start, 0);
                assert_eq!(shares[size - 1].end, n);
                for w in shares.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                    assert!(w[0].len() >= w[1].len() && w[0].len() - w[1].len() <= 1);
                }
            }
        }
    }
}
