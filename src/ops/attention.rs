//! Scaled dot-product attention with grouped-query heads, a causal mask (with a KV-cache
//! offset) and a per-batch key padding mask (`shaders/attention/`).
//!
//! Two implementations, both tested against the f64 reference ([`AttentionKernel`]):
//! - Composite (`attention.wgsl`): `S = Q·Kᵀ` (batched register-blocked matmul), one fused
//!   kernel for scale + masks + softmax (its probabilities `P` are saved for backward), and
//!   `O = P·V`. Backward is four batched matmuls around one fused softmax-backward kernel:
//!   `dV = Pᵀ·dO`, `dP = dO·Vᵀ`, `dS = scale · P ⊙ (dP − rowsum(dP ⊙ P))`, `dQ = dS·K`,
//!   `dK = dSᵀ·Q`.
//! - Flash (`flash.wgsl`): one invocation per query row with an online softmax, saving only
//!   the row's max and log-sum; backward recomputes the scores, one kernel per query row for
//!   `dQ` and one per key row for `dK`, `dV` (summing over the query rows that see it).
//!
//! Neither uses atomics, so results are bitwise deterministic. `Auto` picks from
//! `cargo bench --bench kernels -- attention` on lavapipe (2 shared cores, medians). With the
//! subgroup matmul (lavapipe, Mesa 25): MiniLM (B=16, H=12, T=128, D=32, padded) forward 65 ms
//! composite vs 220 ms flash, forward+backward 263 ms vs 749 ms; SmolLM2 (B=2, Hq=9, Hkv=3,
//! T=128, D=64, causal) forward 6.7 ms vs 22 ms, forward+backward 29 ms vs 94 ms: composite
//! everywhere. With the older blocked matmul (CPU adapters without subgroups): MiniLM forward
//! 653 ms flash vs 893 ms composite, forward+backward 2.78 s vs 3.26 s; SmolLM2 forward 85 ms
//! vs 80 ms, forward+backward 340 ms vs 311 ms: flash for `D <= 32`, composite above (where the
//! matmul's reuse across a row block pays for the stored probabilities). Real GPUs keep that
//! rule until measured.
//!
//! Grouped-query attention costs no copy: query head `h` reads kv head `h / G` (G = Hq/Hkv),
//! so the G query heads of one kv head are contiguous in `[B, Hq, Tq, D]` and the query is viewed
//! as `[B·Hkv, G·Tq, D]`. The products then run per kv head, and `dK`, `dV` come out already
//! summed over the G query heads sharing it.

use crate::engine::{shaders, Binding, Engine, Kernel};
use crate::error::{Error, Result};
use crate::graph::{bytes_of, record, Backward, Needs};
use crate::ops::matmul::{matmul_raw, uses_subgroup_kernel, MatmulKernel};
use crate::ops::{launch_1d, same_engine};
use crate::tensor::{DType, Tensor};

/// Options of [`attention`].
#[derive(Debug, Clone, Copy)]
pub struct Attention<'a> {
    /// Multiplies `q·k` before the softmax; usually `1/sqrt(D)` ([`Attention::new`]).
    pub scale: f32,
    /// Query `i` (0-based) sees keys `j <= i + (Tk - Tq)` only; needs `Tq <= Tk`. With `Tq = Tk`
    /// this is the usual lower-triangular mask; with `Tq = 1` it is a KV-cache decode step that
    /// sees every key.
    pub causal: bool,
    /// Per-batch key mask, f32 `[B, Tk]`: 1 keeps a key, 0 masks it (any non-zero value keeps).
    /// This is exactly HF's `attention_mask` converted to f32. A query row whose keys are all
    /// masked gets an output of 0 and zero gradients.
    pub key_padding: Option<&'a Tensor>,
    /// A causal sliding window (Mistral's, Qwen2's `sliding_window`): query `i` also needs
    /// `j > i + (Tk - Tq) - window`, so it sees its last `window` keys at most. Needs `causal`.
    pub window: Option<usize>,
}

impl Attention<'_> {
    /// Unmasked attention with `scale = 1/sqrt(head_dim)`.
    pub fn new(head_dim: usize) -> Attention<'static> {
        Attention { scale: 1.0 / (head_dim as f32).sqrt(), causal: false, key_padding: None, window: None }
    }
}

/// Sizes of one call.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    b: usize,
    hq: usize,
    hkv: usize,
    tq: usize,
    tk: usize,
    d: usize,
}

impl Geometry {
    /// Query heads per kv head.
    fn g(&self) -> usize {
        self.hq / self.hkv
    }
    /// Batch of the folded products: one per (batch, kv head).
    fn z(&self) -> usize {
        self.b * self.hkv
    }
    /// Rows per folded batch: G query heads times Tq positions.
    fn rows(&self) -> usize {
        self.g() * self.tq
    }
}

const OP: &str = "attention";

fn check(q: &Tensor, k: &Tensor, v: &Tensor, opts: &Attention) -> Result<Geometry> {
    for t in [q, k, v] {
        t.expect_float(OP)?;
        if t.dtype() != q.dtype() {
            return Err(Error::DType { op: OP, expected: q.dtype().name(), got: t.dtype().name() });
        }
    }
    if q.rank() != 4 || k.rank() != 4 {
        return Err(Error::shape(OP, q.shape(), k.shape(), "q must be [B, Hq, Tq, D] and k [B, Hkv, Tk, D]"));
    }
    if v.shape() != k.shape() {
        return Err(Error::shape(OP, k.shape(), v.shape(), "k and v must have the same shape"));
    }
    let (qs, ks) = (q.shape(), k.shape());
    let g = Geometry { b: qs[0], hq: qs[1], hkv: ks[1], tq: qs[2], tk: ks[2], d: qs[3] };
    if ks[0] != g.b || ks[3] != g.d {
        return Err(Error::shape(OP, qs, ks, "q and k must agree on batch B and head dim D"));
    }
    if [g.b, g.hq, g.hkv, g.tq, g.tk, g.d].contains(&0) {
        return Err(Error::shape(OP, qs, ks, "every dim must be at least 1"));
    }
    if !g.hq.is_multiple_of(g.hkv) {
        return Err(Error::shape(
            OP,
            qs,
            ks,
            format!("query heads {} must be a multiple of kv heads {}", g.hq, g.hkv),
        ));
    }
    if opts.causal && g.tq > g.tk {
        return Err(Error::shape(
            OP,
            qs,
            ks,
            format!("causal attention needs Tq <= Tk, got Tq = {} and Tk = {}", g.tq, g.tk),
        ));
    }
    if let Some(m) = opts.key_padding {
        if m.dtype() != DType::F32 {
            return Err(Error::DType { op: OP, expected: "f32", got: m.dtype().name() });
        }
        if m.shape() != [g.b, g.tk] {
            return Err(Error::shape(
                OP,
                ks,
                m.shape(),
                format!("key_padding must be [B, Tk] = [{}, {}]", g.b, g.tk),
            ));
        }
    }
    if !opts.scale.is_finite() {
        return Err(Error::arg(OP, format!("scale must be finite, got {}", opts.scale)));
    }
    match opts.window {
        Some(0) => return Err(Error::arg(OP, "a sliding window must hold at least 1 key")),
        Some(w) if !opts.causal => {
            return Err(Error::arg(OP, format!("a sliding window ({w}) needs causal attention")))
        }
        Some(w) if w > u32::MAX as usize => {
            return Err(Error::arg(OP, format!("sliding window {w} is over the kernels' u32 range")))
        }
        _ => {}
    }
    Ok(g)
}

/// Uniform of `attention.wgsl` (both entry points).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    tk: u32,
    tq: u32,
    group_rows: u32,
    hkv: u32,
    causal: u32,
    has_mask: u32,
    shift: u32,
    scale: f32,
    /// 0: no sliding window.
    window: u32,
    _pad: [u32; 2],
}

fn params(g: &Geometry, opts: &Attention) -> Params {
    Params {
        rows: (g.z() * g.rows()) as u32,
        tk: g.tk as u32,
        tq: g.tq as u32,
        group_rows: g.rows() as u32,
        hkv: g.hkv as u32,
        causal: opts.causal as u32,
        has_mask: opts.key_padding.is_some() as u32,
        shift: g.tk.saturating_sub(g.tq) as u32,
        scale: opts.scale,
        window: opts.window.unwrap_or(0) as u32,
        _pad: [0; 2],
    }
}

struct AttentionBackward {
    /// Folded views `[Z, G·Tq, D]`, `[Z, Tk, D]`, `[Z, Tk, D]`; each saved only when a
    /// gradient needs it.
    q: Option<Tensor>,
    k: Option<Tensor>,
    v: Option<Tensor>,
    /// Probabilities `[Z, G·Tq, Tk]`.
    p: Tensor,
    geo: Geometry,
    params: Params,
    needs: Needs,
}

impl Backward for AttentionBackward {
    fn backward(&self, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let e = grad.engine();
        let geo = &self.geo;
        let auto = MatmulKernel::Auto;
        let (z, rows) = (geo.z(), geo.rows());
        let kv_shape = [geo.b, geo.hkv, geo.tk, geo.d];
        let g3 = grad.view_as(&[z, rows, geo.d]);
        let gv = if self.needs[2] {
            Some(matmul_raw(&self.p, &g3, true, false, auto)?.view_as(&kv_shape))
        } else {
            None
        };
        let (gq, gk) = if self.needs[0] || self.needs[1] {
            let v = self.v.as_ref().expect("v saved when q or k needs grad");
            // dP = dO·Vᵀ, then dS in place.
            let ds = matmul_raw(&g3, v, false, true, auto)?;
            launch_1d(
                e,
                &Kernel::new(&shaders::ATTENTION, "attn_softmax_backward").half(ds.is_half()),
                &self.params,
                &[
                    Binding::read(self.p.storage(), self.p.nbytes()),
                    Binding::write(ds.storage(), ds.nbytes()),
                ],
                z * rows,
            )?;
            let gq = if self.needs[0] {
                let k = self.k.as_ref().expect("k saved when q needs grad");
                Some(matmul_raw(&ds, k, false, false, auto)?.view_as(&[geo.b, geo.hq, geo.tq, geo.d]))
            } else {
                None
            };
            let gk = if self.needs[1] {
                let q = self.q.as_ref().expect("q saved when k needs grad");
                Some(matmul_raw(&ds, q, true, false, auto)?.view_as(&kv_shape))
            } else {
                None
            };
            (gq, gk)
        } else {
            (None, None)
        };
        Ok(vec![gq, gk, gv])
    }
    fn saved_bytes(&self) -> u64 {
        bytes_of(&[self.q.as_ref(), self.k.as_ref(), self.v.as_ref(), Some(&self.p)])
    }
}

/// Which implementation [`attention_with`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionKernel {
    /// Composite where matmul runs the subgroup kernel; elsewhere flash for head dims up to
    /// [`FLASH_AUTO_MAX_HEAD_DIM`] and composite above (measured; see the module docs).
    #[default]
    Auto,
    /// Batched matmuls around a fused masked-softmax kernel; saves the probabilities.
    Composite,
    /// One fused kernel per query row with an online softmax; saves only per-row statistics and
    /// recomputes scores in backward. Head dims up to [`FLASH_MAX_HEAD_DIM`].
    Flash,
}

/// Largest head dim of [`AttentionKernel::Flash`] (`MAX_D` in `flash.wgsl`).
pub const FLASH_MAX_HEAD_DIM: usize = 128;

/// Largest head dim for which [`AttentionKernel::Auto`] picks the flash kernel.
pub const FLASH_AUTO_MAX_HEAD_DIM: usize = 32;

/// The implementation [`AttentionKernel::Auto`] runs on this engine at this head dim.
pub fn auto_kernel(e: &Engine, head_dim: usize) -> AttentionKernel {
    if head_dim <= FLASH_AUTO_MAX_HEAD_DIM && !uses_subgroup_kernel(e) {
        AttentionKernel::Flash
    } else {
        AttentionKernel::Composite
    }
}

/// Scaled dot-product attention: `softmax(scale · q·kᵀ + masks) · v`.
///
/// `q`: `[B, Hq, Tq, D]`; `k`, `v`: `[B, Hkv, Tk, D]` with `Hq % Hkv == 0` (query head `h`
/// reads kv head `h / (Hq/Hkv)`; multi-head attention is `Hkv == Hq`). Returns
/// `[B, Hq, Tq, D]`. Gradients flow to `q`, `k` and `v` (never to the mask).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, opts: &Attention) -> Result<Tensor> {
    attention_with(q, k, v, opts, AttentionKernel::Auto)
}

/// [`attention`] with an explicit implementation (tests and benches).
pub fn attention_with(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    opts: &Attention,
    kernel: AttentionKernel,
) -> Result<Tensor> {
    let mut ts = vec![q, k, v];
    if let Some(m) = opts.key_padding {
        ts.push(m);
    }
    let e = same_engine(OP, &ts)?;
    let geo = check(q, k, v, opts)?;
    match kernel {
        AttentionKernel::Auto => match auto_kernel(e, geo.d) {
            AttentionKernel::Flash => flash(e, q, k, v, opts, geo),
            _ => composite(e, q, k, v, opts, geo),
        },
        AttentionKernel::Composite => composite(e, q, k, v, opts, geo),
        AttentionKernel::Flash => {
            if geo.d > FLASH_MAX_HEAD_DIM {
                return Err(Error::shape(
                    OP,
                    q.shape(),
                    k.shape(),
                    format!("the flash kernel takes head dims up to {FLASH_MAX_HEAD_DIM}, got {}", geo.d),
                ));
            }
            flash(e, q, k, v, opts, geo)
        }
    }
}

fn composite(
    e: &Engine,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    opts: &Attention,
    geo: Geometry,
) -> Result<Tensor> {
    let (z, rows) = (geo.z(), geo.rows());
    let q3 = q.view_as(&[z, rows, geo.d]);
    let k3 = k.view_as(&[z, geo.tk, geo.d]);
    let v3 = v.view_as(&[z, geo.tk, geo.d]);
    let auto = MatmulKernel::Auto;
    let s = matmul_raw(&q3, &k3, false, true, auto)?;
    let probs = Tensor::empty_typed(e, &[z, rows, geo.tk], q.dtype())?;
    let p = params(&geo, opts);
    // Without a mask the binding is unused; any other read-only buffer fills it.
    let mask = opts.key_padding.unwrap_or(k);
    launch_1d(
        e,
        &Kernel::new(&shaders::ATTENTION, "attn_softmax_forward").half(q.is_half()),
        &p,
        &[
            Binding::read(s.storage(), s.nbytes()),
            Binding::read(mask.storage(), mask.nbytes()),
            Binding::write(probs.storage(), probs.nbytes()),
        ],
        z * rows,
    )?;
    drop(s);
    let out = matmul_raw(&probs, &v3, false, false, auto)?.view_as(&[geo.b, geo.hq, geo.tq, geo.d]);
    record(OP, out, &[q, k, v], |needs| {
        let (nq, nk) = (needs[0], needs[1]);
        Ok(Box::new(AttentionBackward {
            q: nk.then_some(q3),
            k: nq.then_some(k3),
            v: (nq || nk).then_some(v3),
            p: probs,
            geo,
            params: p,
            needs: needs.clone(),
        }))
    })
}

/// Uniform of `flash.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct FlashParams {
    rows: u32,
    tk: u32,
    tq: u32,
    group_rows: u32,
    hkv: u32,
    causal: u32,
    has_mask: u32,
    shift: u32,
    scale: f32,
    d: u32,
    /// 0: no sliding window.
    window: u32,
    _pad: u32,
}

struct FlashBackward {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Option<Tensor>,
    /// Output `[Z, G·Tq, D]` and per-row (max, log-sum) `[Z·G·Tq, 2]`.
    o: Tensor,
    lse: Tensor,
    geo: Geometry,
    p: FlashParams,
    needs: Needs,
}

impl Backward for FlashBackward {
    fn backward(&self, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let e = grad.engine();
        let geo = &self.geo;
        let (z, rows) = (geo.z(), geo.rows());
        let kv_shape = [geo.b, geo.hkv, geo.tk, geo.d];
        let go = grad.view_as(&[z, rows, geo.d]);
        let stats = Tensor::empty(e, &[z * rows, 3])?;
        launch_1d(
            e,
            &Kernel::new(&shaders::FLASH, "flash_backward_stats").half(go.is_half()),
            &self.p,
            &[
                Binding::read(go.storage(), go.nbytes()),
                Binding::read(self.o.storage(), self.o.nbytes()),
                Binding::read(self.lse.storage(), self.lse.nbytes()),
                Binding::write(stats.storage(), stats.nbytes()),
            ],
            z * rows,
        )?;
        let mask = self.mask.as_ref().unwrap_or(&self.k);
        let ins = [&self.q, &self.k, &self.v, mask, &stats, &go];
        let reads =
            || -> Vec<Binding> { ins.iter().map(|t| Binding::read(t.storage(), t.nbytes())).collect() };
        let gq = if self.needs[0] {
            let dq = Tensor::empty_typed(e, &[geo.b, geo.hq, geo.tq, geo.d], self.q.dtype())?;
            let mut b = reads();
            b.push(Binding::write(dq.storage(), dq.nbytes()));
            let kern = Kernel::new(&shaders::FLASH, "flash_backward_q").half(dq.is_half());
            launch_1d(e, &kern, &self.p, &b, z * rows)?;
            Some(dq)
        } else {
            None
        };
        let (gk, gv) = if self.needs[1] || self.needs[2] {
            let dk = Tensor::empty_typed(e, &kv_shape, self.q.dtype())?;
            let dv = Tensor::empty_typed(e, &kv_shape, self.q.dtype())?;
            let mut b = reads();
            b.push(Binding::write(dk.storage(), dk.nbytes()));
            b.push(Binding::write(dv.storage(), dv.nbytes()));
            let kern = Kernel::new(&shaders::FLASH, "flash_backward_kv").half(dk.is_half());
            launch_1d(e, &kern, &self.p, &b, z * geo.tk)?;
            (self.needs[1].then_some(dk), self.needs[2].then_some(dv))
        } else {
            (None, None)
        };
        Ok(vec![gq, gk, gv])
    }
    fn saved_bytes(&self) -> u64 {
        bytes_of(&[Some(&self.q), Some(&self.k), Some(&self.v), Some(&self.o), Some(&self.lse)])
    }
}

fn flash(e: &Engine, q: &Tensor, k: &Tensor, v: &Tensor, opts: &Attention, geo: Geometry) -> Result<Tensor> {
    let (z, rows) = (geo.z(), geo.rows());
    let p = FlashParams {
        rows: (z * rows) as u32,
        tk: geo.tk as u32,
        tq: geo.tq as u32,
        group_rows: rows as u32,
        hkv: geo.hkv as u32,
        causal: opts.causal as u32,
        has_mask: opts.key_padding.is_some() as u32,
        shift: geo.tk.saturating_sub(geo.tq) as u32,
        scale: opts.scale,
        d: geo.d as u32,
        window: opts.window.unwrap_or(0) as u32,
        _pad: 0,
    };
    let o = Tensor::empty_typed(e, &[z, rows, geo.d], q.dtype())?;
    let lse = Tensor::empty(e, &[z * rows, 2])?;
    let mask = opts.key_padding.unwrap_or(k);
    launch_1d(
        e,
        &Kernel::new(&shaders::FLASH, "flash_forward").half(q.is_half()),
        &p,
        &[
            Binding::read(q.storage(), q.nbytes()),
            Binding::read(k.storage(), k.nbytes()),
            Binding::read(v.storage(), v.nbytes()),
            Binding::read(mask.storage(), mask.nbytes()),
            Binding::write(o.storage(), o.nbytes()),
            Binding::write(lse.storage(), lse.nbytes()),
        ],
        z * rows,
    )?;
    let out = o.view_as(&[geo.b, geo.hq, geo.tq, geo.d]);
    record(OP, out, &[q, k, v], |needs| {
        Ok(Box::new(FlashBackward {
            q: q.view_as(&[z, rows, geo.d]),
            k: k.clone(),
            v: v.clone(),
            mask: opts.key_padding.cloned(),
            o,
            lse,
            geo,
            p,
            needs: needs.clone(),
        }))
    })
}
