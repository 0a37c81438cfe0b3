//! Matrix multiply, batched, with transposed operands (`shaders/matmul/`).
//!
//! Four kernels, chosen at run time per adapter class:
//! - `matmul_subgroup`: for CPU adapters with 8-wide subgroups (lavapipe): 64 (or 16) rows x 8
//!   columns per invocation, each A load shared by the 8 lanes through `subgroupBroadcast`;
//!   about 3x `matmul_blocked` there. Needs K % 4 == 0 and N % 4 == 0; reads a transposed B
//!   (or, when M % 4 == 0, a transposed A) in place, so only `Aᵀ·Bᵀ` copies an operand.
//! - `matmul_blocked`: register-blocked 32x32 outputs per invocation with vec4 loads and no
//!   workgroup memory. Fastest on CPU adapters (lavapipe): measured there, workgroup-memory
//!   tiling ran slower than register blocking, and every storage load inside a loop runs lane
//!   by lane, so the tile is as large as compile time allows (see the shader's header). Needs
//!   K % 4 == 0 and N % 4 == 0 and untransposed operands (a transposed operand is copied
//!   first: O(n²) next to the O(n³) product).
//! - `matmul_tiled`: 64x64 workgroup tiles staged in workgroup memory, for real GPUs.
//! - `matmul_generic`: any sizes, transposes read in place; the fallback for awkward shapes.
//!
//! All three are tested on every adapter for correctness.

use crate::engine::{shaders, AdapterClass, Binding, Kernel};
use crate::error::{Error, Result};
use crate::graph::{bytes_of, record, Backward, Needs};
use crate::ops::same_engine;
use crate::tensor::{shape, Tensor};

/// Outputs per invocation of `matmul_blocked.wgsl`: BLOCK_TM rows x 4*BLOCK_TN4 columns,
/// in workgroups of BLOCK_WX x BLOCK_WY (chosen by sweeping on lavapipe; see the shader, which
/// `tools/gen_matmul_blocked.py 32 8 16 1` generates).
const BLOCK_TM: usize = 32;
const BLOCK_TN4: usize = 8;
const BLOCK_WX: usize = 16;
const BLOCK_WY: usize = 1;

/// Entry points of `matmul_subgroup.wgsl` by operand layout (nn, nt, tn) with the rows and
/// vec4 columns per invocation; a workgroup is 8 invocations (`tools/gen_matmul_subgroup.py`
/// generates the same).
struct SubgroupTile {
    entries: [&'static str; 3],
    rows: usize,
    cols4: usize,
}
const SUBGROUP_WIDE: SubgroupTile =
    SubgroupTile { entries: ["matmul_sg64_nn", "matmul_sg64_nt", "matmul_sg64_tn"], rows: 64, cols4: 2 };
const SUBGROUP_SHORT: SubgroupTile =
    SubgroupTile { entries: ["matmul_sg16_nn", "matmul_sg16_nt", "matmul_sg16_tn"], rows: 16, cols4: 4 };
const SUBGROUP_LANES: u32 = 8;

/// Whether `MatmulKernel::Auto` takes the subgroup kernel on this engine (a CPU adapter with
/// 8-wide subgroups); other ops pick their own strategy by it (see `ops::attention`).
pub(crate) fn uses_subgroup_kernel(e: &crate::Engine) -> bool {
    e.adapter_class() == AdapterClass::Cpu && e.subgroup_size() == Some(SUBGROUP_LANES)
}

/// Which kernel to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatmulKernel {
    /// Pick by adapter class and shape.
    Auto,
    /// Needs `Engine::subgroup_size() == Some(8)`.
    Subgroup,
    Blocked,
    Tiled,
    Generic,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    stride_a: u32,
    stride_b: u32,
    stride_c: u32,
    /// `matmul_subgroup.wgsl`: add the bias binding to every row (other kernels: padding).
    has_bias: u32,
}

/// Shape of one side as stored: (batch dims, rows, cols).
fn split(t: &Tensor) -> (Vec<usize>, usize, usize) {
    let s = t.shape();
    let r = s.len();
    (s[..r - 2].to_vec(), s[r - 2], s[r - 1])
}

/// The product without autodiff. `a`, `b` have equal batch dims, or one of them is 2-D and
/// is broadcast over the other's batch.
pub(crate) fn matmul_raw(a: &Tensor, b: &Tensor, ta: bool, tb: bool, kernel: MatmulKernel) -> Result<Tensor> {
    matmul_bias_raw(a, b, ta, tb, kernel, None)
}

/// [`matmul_raw`] plus `bias` (N) added to every row: inside the subgroup kernel's epilogue,
/// as a separate add elsewhere.
pub(crate) fn matmul_bias_raw(
    a: &Tensor,
    b: &Tensor,
    ta: bool,
    tb: bool,
    kernel: MatmulKernel,
    bias: Option<&Tensor>,
) -> Result<Tensor> {
    let e = same_engine("matmul", &[a, b])?;
    let d = Dims::of(a, b, ta, tb)?;
    let mut out_shape = d.batch_dims.clone();
    out_shape.extend([d.m, d.n]);
    let half = half_operands(a, b)?;
    let out = Tensor::empty_typed(e, &out_shape, a.dtype())?;
    // f16 operands take the kernels written over `act` (the register-blocked ones are f32).
    let choice = match choose(e, kernel, &d, ta, tb) {
        MatmulKernel::Blocked | MatmulKernel::Subgroup if half => MatmulKernel::Generic,
        c => c,
    };
    if out.numel() == 0 {
        return Ok(out);
    }
    let max = e.limits().max_compute_workgroups_per_dimension as usize;
    if d.batch > max {
        return Err(Error::arg(
            "matmul",
            format!("batch {} exceeds the adapter's {max} workgroups per dim", d.batch),
        ));
    }
    let fused = match choice {
        MatmulKernel::Blocked | MatmulKernel::Subgroup => {
            register_blocked(e, [a, b], [ta, tb], &d, choice, bias, &out)?
        }
        MatmulKernel::Tiled | MatmulKernel::Generic => {
            workgroup_tiled(e, [a, b], [ta, tb], &d, choice, &out)?;
            false
        }
        MatmulKernel::Auto => unreachable!("choose() resolves Auto"),
    };
    match bias {
        Some(bias) if !fused => {
            let bias = crate::ops::cast::cast_raw(bias, out.dtype())?;
            crate::ops::elementwise::binary_raw(&out, &bias, crate::ops::elementwise::BinaryOp::Add)
        }
        _ => Ok(out),
    }
}

/// Whether both operands are f16 (the half kernels); one f16 and one f32 is a typed error.
fn half_operands(a: &Tensor, b: &Tensor) -> Result<bool> {
    a.expect_float("matmul")?;
    if a.dtype() != b.dtype() {
        return Err(Error::DType { op: "matmul", expected: a.dtype().name(), got: b.dtype().name() });
    }
    Ok(a.is_half())
}

/// The product's sizes, checked: `C[batch] (m x n) = op(A) (m x k) · op(B) (k x n)`.
struct Dims {
    m: usize,
    n: usize,
    k: usize,
    batch_dims: Vec<usize>,
    batch: usize,
    /// Elements between consecutive batch entries of A and B (0 for a broadcast 2-D operand).
    sa: usize,
    sb: usize,
}

impl Dims {
    fn of(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Result<Dims> {
        if a.rank() < 2 || b.rank() < 2 {
            return Err(Error::shape("matmul", a.shape(), b.shape(), "both operands need at least 2 dims"));
        }
        let (ba, ar, ac) = split(a);
        let (bb, br, bc) = split(b);
        let (m, ka) = if ta { (ac, ar) } else { (ar, ac) };
        let (kb, n) = if tb { (bc, br) } else { (br, bc) };
        if ka != kb {
            return Err(Error::shape(
                "matmul",
                a.shape(),
                b.shape(),
                format!("inner dims {ka} and {kb} differ"),
            ));
        }
        let k = ka;
        let batch_dims = if ba == bb || bb.is_empty() {
            ba.clone()
        } else if ba.is_empty() {
            bb.clone()
        } else {
            return Err(Error::shape(
                "matmul",
                a.shape(),
                b.shape(),
                "batch dims must match (or one operand be 2-D)",
            ));
        };
        let batch = shape::numel(&batch_dims);
        let sa = if ba.is_empty() { 0 } else { m * k };
        let sb = if bb.is_empty() { 0 } else { k * n };
        Ok(Dims { m, n, k, batch_dims, batch, sa, sb })
    }

    /// The kernels' parameters; `vec4` counts strides in vec4s (blocked and subgroup kernels).
    fn params(&self, vec4: bool, has_bias: bool) -> Params {
        let unit = if vec4 { 4 } else { 1 };
        Params {
            m: self.m as u32,
            n: self.n as u32,
            k: self.k as u32,
            batch: self.batch as u32,
            stride_a: (self.sa / unit) as u32,
            stride_b: (self.sb / unit) as u32,
            stride_c: (self.m * self.n / unit) as u32,
            has_bias: has_bias as u32,
        }
    }
}

/// `kernel`, with `Auto` resolved by adapter class and shape.
fn choose(e: &crate::Engine, kernel: MatmulKernel, d: &Dims, ta: bool, tb: bool) -> MatmulKernel {
    if kernel != MatmulKernel::Auto {
        return kernel;
    }
    match e.adapter_class() {
        AdapterClass::Cpu if d.k.is_multiple_of(4) && d.n.is_multiple_of(4) => {
            if uses_subgroup_kernel(e) {
                MatmulKernel::Subgroup
            } else {
                MatmulKernel::Blocked
            }
        }
        AdapterClass::Gpu if !ta && !tb => MatmulKernel::Tiled,
        _ => MatmulKernel::Generic,
    }
}

/// The blocked and subgroup kernels' requirements, as errors naming what is missing.
fn check_register_blocked(e: &crate::Engine, choice: MatmulKernel, d: &Dims) -> Result<()> {
    if !(d.k.is_multiple_of(4) && d.n.is_multiple_of(4)) {
        return Err(Error::arg(
            "matmul",
            format!("the {choice:?} kernel needs K and N divisible by 4, got K={} N={}", d.k, d.n),
        ));
    }
    if choice == MatmulKernel::Subgroup && e.subgroup_size() != Some(SUBGROUP_LANES) {
        return Err(Error::arg(
            "matmul",
            format!(
                "the subgroup kernel needs subgroups of {SUBGROUP_LANES} lanes; this adapter has {:?}",
                e.subgroup_size()
            ),
        ));
    }
    Ok(())
}

/// Dispatch the blocked or subgroup kernel into `out`; true when `bias` was added there.
fn register_blocked(
    e: &crate::Engine,
    [a, b]: [&Tensor; 2],
    [ta, tb]: [bool; 2],
    d: &Dims,
    choice: MatmulKernel,
    bias: Option<&Tensor>,
    out: &Tensor,
) -> Result<bool> {
    check_register_blocked(e, choice, d)?;
    // The blocked kernel reads both operands untransposed and the subgroup one reads at
    // most one of them transposed (A only when M % 4 == 0); copy the rest first.
    let sub = choice == MatmulKernel::Subgroup;
    let read_tb = sub && tb;
    let read_ta = sub && ta && !tb && d.m.is_multiple_of(4);
    let a2 = if ta && !read_ta { crate::ops::layout::transpose_raw(a)? } else { a.clone() };
    let b2 = if tb && !read_tb { crate::ops::layout::transpose_raw(b)? } else { b.clone() };
    let fused = sub && bias.is_some();
    let p = d.params(true, fused);
    let (kern, groups) = if sub { subgroup_kernel(d, read_ta, read_tb) } else { blocked_kernel(d) };
    let mut bindings = vec![
        Binding::read(a2.storage(), a2.nbytes()),
        Binding::read(b2.storage(), b2.nbytes()),
        Binding::write(out.storage(), out.nbytes()),
    ];
    if sub {
        // Without a bias the binding is unread; B stands in.
        let t = bias.unwrap_or(&b2);
        bindings.push(Binding::read(t.storage(), t.nbytes()));
    }
    e.dispatch(&kern, bytemuck::bytes_of(&p), &bindings, groups)?;
    Ok(fused)
}

/// The subgroup entry for the operand layout, and its workgroups.
fn subgroup_kernel(d: &Dims, read_ta: bool, read_tb: bool) -> (Kernel, [u32; 3]) {
    // Short products (attention scores, small batches) waste most of a 64-row tile.
    let tile = if d.m <= 32 { &SUBGROUP_SHORT } else { &SUBGROUP_WIDE };
    let entry = tile.entries[if read_tb {
        1
    } else if read_ta {
        2
    } else {
        0
    }];
    let cols = tile.cols4 * SUBGROUP_LANES as usize;
    let groups = [(d.n / 4).div_ceil(cols) as u32, d.m.div_ceil(tile.rows) as u32, d.batch as u32];
    (Kernel::new(&shaders::MATMUL_SUBGROUP, entry), groups)
}

/// `matmul_blocked.wgsl` and its workgroups.
fn blocked_kernel(d: &Dims) -> (Kernel, [u32; 3]) {
    let groups = [
        (d.n / 4).div_ceil(BLOCK_TN4).div_ceil(BLOCK_WX) as u32,
        d.m.div_ceil(BLOCK_TM).div_ceil(BLOCK_WY) as u32,
        d.batch as u32,
    ];
    (Kernel::new(&shaders::MATMUL_BLOCKED, "matmul_blocked"), groups)
}

/// Dispatch the tiled kernel (untransposed operands) or the generic one into `out`.
fn workgroup_tiled(
    e: &crate::Engine,
    [a, b]: [&Tensor; 2],
    [ta, tb]: [bool; 2],
    d: &Dims,
    choice: MatmulKernel,
    out: &Tensor,
) -> Result<()> {
    let p = d.params(false, false);
    let (kern, groups) = if choice == MatmulKernel::Tiled && !ta && !tb {
        (
            Kernel::new(&shaders::MATMUL_TILED, "matmul_tiled").half(a.is_half()),
            [d.n.div_ceil(64) as u32, d.m.div_ceil(64) as u32, d.batch as u32],
        )
    } else {
        (
            Kernel::new(&shaders::MATMUL_GENERIC, "matmul_generic")
                .with("TRANS_A", ta as u32)
                .with("TRANS_B", tb as u32)
                .half(a.is_half()),
            [d.n.div_ceil(4).div_ceil(8) as u32, d.m.div_ceil(4).div_ceil(8) as u32, d.batch as u32],
        )
    };
    let bindings = [
        Binding::read(a.storage(), a.nbytes()),
        Binding::read(b.storage(), b.nbytes()),
        Binding::write(out.storage(), out.nbytes()),
    ];
    e.dispatch(&kern, bytemuck::bytes_of(&p), &bindings, groups)
}

struct MatmulBackward {
    a: Option<Tensor>,
    b: Option<Tensor>,
    ta: bool,
    tb: bool,
    needs: Needs,
    /// b was 2-D and broadcast over a's batch: its gradient sums over the batch.
    b_broadcast: bool,
    a_broadcast: bool,
}

impl Backward for MatmulBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let auto = MatmulKernel::Auto;
        let (ta, tb) = (self.ta, self.tb);
        // C = X·Y, X = op(A), Y = op(B): dX = G·Yᵀ, dY = Xᵀ·G; a transposed operand takes the
        // transpose of its gradient, which swaps the product's order.
        let ga = if self.needs[0] {
            let b = self.b.as_ref().expect("b saved when a needs grad");
            let ga =
                if !ta { matmul_raw(g, b, false, !tb, auto)? } else { matmul_raw(b, g, tb, true, auto)? };
            Some(if self.a_broadcast { crate::ops::reduce::sum_to_shape(&ga, &last2(&ga))? } else { ga })
        } else {
            None
        };
        let gb = if self.needs[1] {
            let a = self.a.as_ref().expect("a saved when b needs grad");
            let gb =
                if !tb { matmul_raw(a, g, !ta, false, auto)? } else { matmul_raw(g, a, true, ta, auto)? };
            Some(if self.b_broadcast { crate::ops::reduce::sum_to_shape(&gb, &last2(&gb))? } else { gb })
        } else {
            None
        };
        Ok(vec![ga, gb])
    }
    fn saved_bytes(&self) -> u64 {
        bytes_of(&[self.a.as_ref(), self.b.as_ref()])
    }
}

fn last2(t: &Tensor) -> Vec<usize> {
    t.shape()[t.rank() - 2..].to_vec()
}

/// `op(a) · op(b)` where `op` transposes the last two dims when the flag is set.
/// Batch dims must match, or one operand may be 2-D (broadcast over the other's batch).
pub fn matmul_t(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Result<Tensor> {
    matmul_with(a, b, ta, tb, MatmulKernel::Auto)
}

/// [`matmul_t`] with an explicit kernel choice (tests and benches).
pub fn matmul_with(a: &Tensor, b: &Tensor, ta: bool, tb: bool, kernel: MatmulKernel) -> Result<Tensor> {
    half_operands(a, b)?;
    // A stack of rows times one matrix is one big 2-D product: fold the batch into M.
    if a.rank() > 2 && b.rank() == 2 && !ta {
        let (k, lead) = (a.shape()[a.rank() - 1], &a.shape()[..a.rank() - 1]);
        let a2 = crate::ops::layout::reshape(a, &[shape::numel(lead), k])?;
        let c2 = matmul_with(&a2, b, false, tb, kernel)?;
        let mut os = lead.to_vec();
        os.push(c2.shape()[1]);
        return crate::ops::layout::reshape(&c2, &os);
    }
    let out = matmul_raw(a, b, ta, tb, kernel)?;
    record("matmul", out, &[a, b], |needs| {
        Ok(Box::new(MatmulBackward {
            a: needs[1].then(|| a.clone()),
            b: needs[0].then(|| b.clone()),
            ta,
            tb,
            needs: needs.clone(),
            b_broadcast: b.rank() == 2 && a.rank() > 2,
            a_broadcast: a.rank() == 2 && b.rank() > 2,
        }))
    })
}

impl Tensor {
    /// Matrix product over the last two dims.
    pub fn matmul(&self, b: &Tensor) -> Result<Tensor> {
        matmul_t(self, b, false, false)
    }
}
