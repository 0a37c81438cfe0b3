//! CPU reference: a plain-loop f64 version of every op, forward and backward, used by the tests
//! as ground truth for the WGSL kernels (`tests/ops_vs_reference.rs`) and checked itself against
//! central differences (`gradcheck`, `tests/gradcheck.rs`).
//!
//! Everything here is written for clarity, not speed: one loop per formula, no shared code with
//! the GPU path (broadcasting, hashing, erf are re-derived here), so a bug in one is not copied
//! into the other. Backward functions are vector-Jacobian products: given the inputs and the
//! upstream gradient `g` of the output, they return the gradient of each input.
//!
//! Semantics match the GPU ops exactly: NumPy broadcasting, biased variance in LayerNorm, the
//! erf form of GELU, PyTorch's sign rule for `pow`, cross-entropy's mean over non-ignored rows,
//! and dropout's integer hash bit for bit. Shape mistakes are programming errors in a test and
//! panic with a message.

pub mod attention;
pub mod batch_norm;
pub mod conv;
pub mod dropout;
pub mod elementwise;
pub mod embedding;
pub mod gradcheck;
pub mod layout;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod softmax;

/// A dense row-major f64 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct RefTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl RefTensor {
    /// `data` with `shape`; panics when the element count does not match.
    pub fn new(data: Vec<f64>, shape: &[usize]) -> RefTensor {
        assert_eq!(data.len(), numel(shape), "reference: {} values do not fill shape {shape:?}", data.len());
        RefTensor { shape: shape.to_vec(), data }
    }

    /// Widen f32 data (as uploaded to the GPU) to f64.
    pub fn from_f32(data: &[f32], shape: &[usize]) -> RefTensor {
        RefTensor::new(data.iter().map(|&v| v as f64).collect(), shape)
    }

    pub fn zeros(shape: &[usize]) -> RefTensor {
        RefTensor::new(vec![0.0; numel(shape)], shape)
    }

    pub fn full(shape: &[usize], v: f64) -> RefTensor {
        RefTensor::new(vec![v; numel(shape)], shape)
    }

    /// A rank-0 tensor.
    pub fn scalar(v: f64) -> RefTensor {
        RefTensor::new(vec![v], &[])
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The single value of a one-element tensor.
    pub fn item(&self) -> f64 {
        assert_eq!(self.numel(), 1, "reference: item() of shape {:?}", self.shape);
        self.data[0]
    }

    /// Round to f32 (what the GPU would hold).
    pub fn to_f32(&self) -> Vec<f32> {
        self.data.iter().map(|&v| v as f32).collect()
    }

    /// Apply `f` to every element.
    pub fn map(&self, f: impl Fn(f64) -> f64) -> RefTensor {
        RefTensor { shape: self.shape.clone(), data: self.data.iter().map(|&v| f(v)).collect() }
    }

    /// Elementwise combination of two tensors of the same shape.
    pub fn zip(&self, o: &RefTensor, f: impl Fn(f64, f64) -> f64) -> RefTensor {
        assert_eq!(self.shape, o.shape, "reference: zip of different shapes");
        RefTensor {
            shape: self.shape.clone(),
            data: self.data.iter().zip(&o.data).map(|(&a, &b)| f(a, b)).collect(),
        }
    }

    /// Same data, new shape.
    pub fn reshape(&self, shape: &[usize]) -> RefTensor {
        RefTensor::new(self.data.clone(), shape)
    }

    /// `sum(self * w)`: the scalar a weighted upstream gradient `w` stands for.
    pub fn dot(&self, w: &RefTensor) -> f64 {
        assert_eq!(self.shape, w.shape, "reference: dot of different shapes");
        self.data.iter().zip(&w.data).map(|(a, b)| a * b).sum()
    }
}

/// Number of elements (1 for a scalar `[]`).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// Coordinates of linear index `i` in `shape`.
pub fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut c = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        c[d] = i % shape[d];
        i /= shape[d];
    }
    c
}

/// NumPy broadcasting of two shapes, or `None` when they do not broadcast.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| if i + s.len() >= r { s[i + s.len() - r] } else { 1 };
    (0..r)
        .map(|i| {
            let (x, y) = (dim(a, i), dim(b, i));
            if x == y || y == 1 {
                Some(x)
            } else if x == 1 {
                Some(y)
            } else {
                None
            }
        })
        .collect()
}

/// Linear index into `shape` of the element that output coordinate `c` (of the broadcast
/// shape) reads.
pub fn broadcast_index(c: &[usize], shape: &[usize]) -> usize {
    let pad = c.len() - shape.len();
    let st = strides(shape);
    (0..shape.len()).map(|d| if shape[d] == 1 { 0 } else { c[pad + d] * st[d] }).sum()
}

/// Normalise a possibly negative axis (panics when out of range).
pub fn axis(a: isize, rank: usize) -> usize {
    let n = if a < 0 { a + rank as isize } else { a };
    assert!(n >= 0 && (n as usize) < rank, "reference: axis {a} out of range for rank {rank}");
    n as usize
}

/// How far apart a GPU result and its reference are, for a failure message.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// Linear index of the worst element (the one furthest past its tolerance).
    pub index: usize,
    /// Its coordinates in the tensor's shape.
    pub coords: Vec<usize>,
    pub got: f64,
    pub want: f64,
    /// |got - want| / (atol + rtol |want|) at that element (> 1 fails).
    pub ratio: f64,
    /// Elements out of tolerance.
    pub failures: usize,
    pub total: usize,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} elements out of tolerance; worst at index {} {:?}: got {:e}, want {:e} (|diff| = {:e}, {:.2}x the tolerance)",
            self.failures,
            self.total,
            self.index,
            self.coords,
            self.got,
            self.want,
            (self.got - self.want).abs(),
            self.ratio
        )
    }
}

/// Compare `got` (GPU f32) with `want` (reference) elementwise: `|got - want| <= atol + rtol |want|`.
/// NaN matches NaN, infinities match infinities of the same sign. On success returns the worst
/// ratio of error to tolerance (<= 1).
pub fn compare(got: &[f32], want: &RefTensor, atol: f64, rtol: f64) -> Result<f64, Mismatch> {
    compare_with(got, want, |_, w| atol + rtol * w.abs())
}

/// [`compare`] with a per-element tolerance `tol(index, want)`.
pub fn compare_with(got: &[f32], want: &RefTensor, tol: impl Fn(usize, f64) -> f64) -> Result<f64, Mismatch> {
    if got.len() != want.numel() {
        return Err(Mismatch {
            index: got.len().min(want.numel()),
            coords: vec![],
            got: got.len() as f64,
            want: want.numel() as f64,
            ratio: f64::INFINITY,
            failures: 1,
            total: want.numel(),
        });
    }
    let ratio = |i: usize, g: f64, w: f64| -> f64 {
        if g.is_nan() && w.is_nan() || g.is_infinite() && g == w {
            0.0
        } else if g.is_nan() || w.is_nan() || g.is_infinite() || w.is_infinite() {
            f64::INFINITY
        } else if g == w {
            0.0
        } else {
            (g - w).abs() / tol(i, w)
        }
    };
    let (mut wi, mut wr, mut failures) = (0usize, 0.0f64, 0usize);
    for (i, (&g, &w)) in got.iter().zip(&want.data).enumerate() {
        let r = ratio(i, g as f64, w);
        if r > 1.0 {
            failures += 1;
        }
        if r > wr {
            (wi, wr) = (i, r);
        }
    }
    if failures == 0 {
        return Ok(wr);
    }
    Err(Mismatch {
        index: wi,
        coords: unravel(wi, &want.shape),
        got: got[wi] as f64,
        want: want.data[wi],
        ratio: wr,
        failures,
        total: want.numel(),
    })
}
