//! The MPI side of [`Cluster`](super::Cluster), over the system's MPI through the `mpi` crate
//! (rsmpi). MPI is initialised with `MPI_THREAD_SERIALIZED` and every call goes through one
//! lock, so a host may drive the cluster from any thread (one at a time, as that level asks).

use std::sync::Mutex;

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;
use mpi::Threading;

use super::mpi_error;
use crate::error::Result;

/// Elements per collective call: MPI counts are C ints, so a larger buffer goes in pieces.
const PIECE: usize = 1 << 28;

pub(super) struct MpiWorld {
    /// Finalises MPI when the last [`Cluster`](super::Cluster) clone is dropped.
    _universe: Universe,
    rank: usize,
    size: usize,
    lock: Mutex<()>,
}

fn world() -> SimpleCommunicator {
    SimpleCommunicator::world()
}

pub(super) fn abort(code: i32) -> ! {
    world().abort(code)
}

impl MpiWorld {
    pub fn init() -> Result<MpiWorld> {
        if mpi::is_initialized() {
            return Err(mpi_error("MPI", "already initialised in this process (one cluster per process)"));
        }
        let (universe, level) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| mpi_error("MPI", "MPI_Init_thread failed"))?;
        if level < Threading::Serialized {
            log::warn!("MPI offers threading level {level:?}; whet calls it from one thread at a time");
        }
        let w = world();
        Ok(MpiWorld {
            _universe: universe,
            rank: w.rank() as usize,
            size: w.size() as usize,
            lock: Mutex::new(()),
        })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn broadcast(&self, data: &mut [f32]) -> Result<()> {
        let _g = self.guard();
        let w = world();
        let root = w.process_at_rank(0);
        for piece in data.chunks_mut(PIECE) {
            root.broadcast_into(piece);
        }
        Ok(())
    }

    pub fn broadcast_bytes(&self, mut data: Vec<u8>) -> Result<Vec<u8>> {
        let _g = self.guard();
        let w = world();
        let root = w.process_at_rank(0);
        let mut len = data.len() as u64;
        root.broadcast_into(&mut len);
        data.resize(len as usize, 0);
        for piece in data.chunks_mut(PIECE) {
            root.broadcast_into(piece);
        }
        Ok(data)
    }

    pub fn all_reduce_sum(&self, data: &mut [f32]) -> Result<()> {
        let _g = self.guard();
        let w = world();
        let mut sum = vec![0f32; data.len().min(PIECE)];
        for piece in data.chunks_mut(PIECE) {
            let out = &mut sum[..piece.len()];
            w.all_reduce_into(&*piece, out, SystemOperation::sum());
            piece.copy_from_slice(out);
        }
        Ok(())
    }

    pub fn all_gather_bytes(&self, data: Vec<u8>) -> Result<Vec<Vec<u8>>> {
        let lens = self.all_gather(data.len() as u64)?;
        let _g = self.guard();
        let w = world();
        let mut mine = Some(data);
        let mut all = Vec::with_capacity(self.size);
        for (r, &len) in lens.iter().enumerate() {
            let mut buf = match r == self.rank {
                true => mine.take().unwrap_or_default(),
                false => vec![0u8; len as usize],
            };
            let root = w.process_at_rank(r as i32);
            for piece in buf.chunks_mut(PIECE) {
                root.broadcast_into(piece);
            }
            all.push(buf);
        }
        Ok(all)
    }

    pub fn all_gather(&self, value: u64) -> Result<Vec<u64>> {
        let _g = self.guard();
        let mut all = vec![0u64; self.size];
        world().all_gather_into(&value, &mut all[..]);
        Ok(all)
    }

    pub fn barrier(&self) -> Result<()> {
        let _g = self.guard();
        world().barrier();
        Ok(())
    }
}
