//! Reference 2-D convolution (`ops::conv`): direct loops over NCHW, forward and backward.

use super::RefTensor;
use crate::ops::conv::{Conv2d, Padding};

/// Sizes of one reference convolution: (n, c, h, w, o, kh, kw, ho, wo, top, left).
struct Geo {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
    top: usize,
    left: usize,
    cg: usize,
    og: usize,
}

/// Output size and leading pad of one axis.
fn axis(size: usize, k: usize, s: usize, d: usize, pad: Option<(usize, usize)>) -> (usize, usize) {
    let span = d * (k - 1) + 1;
    match pad {
        Some((before, after)) => {
            assert!(size + before + after >= span, "reference: conv kernel larger than padded input");
            ((size + before + after - span) / s + 1, before)
        }
        None => {
            // TensorFlow SAME: out = ceil(size / s), extra pixel after.
            let out = size.div_ceil(s);
            let total = ((out as i64 - 1) * s as i64 + span as i64 - size as i64).max(0) as usize;
            (out, total / 2)
        }
    }
}

fn geo(x: &RefTensor, w: &RefTensor, cfg: &Conv2d) -> Geo {
    assert_eq!(x.rank(), 4, "reference: conv input must be NCHW");
    assert_eq!(w.rank(), 4, "reference: conv weight must be [O, C/g, kh, kw]");
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let (o, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    let g = cfg.groups;
    assert!(c % g == 0 && o % g == 0 && cg == c / g, "reference: conv groups mismatch");
    let (ph, pw) = match cfg.padding {
        Padding::Explicit { top, bottom, left, right } => (Some((top, bottom)), Some((left, right))),
        Padding::Same => (None, None),
    };
    let (ho, top) = axis(h, kh, cfg.stride.0, cfg.dilation.0, ph);
    let (wo, left) = axis(wd, kw, cfg.stride.1, cfg.dilation.1, pw);
    Geo { n, c, h, w: wd, o, kh, kw, ho, wo, top, left, cg, og: o / g }
}

/// Input coordinate read by output (oi, oj) at tap (ki, kj), if inside the image.
fn tap(g: &Geo, cfg: &Conv2d, oi: usize, oj: usize, ki: usize, kj: usize) -> Option<(usize, usize)> {
    let ih = (oi * cfg.stride.0 + ki * cfg.dilation.0) as i64 - g.top as i64;
    let iw = (oj * cfg.stride.1 + kj * cfg.dilation.1) as i64 - g.left as i64;
    (ih >= 0 && iw >= 0 && (ih as usize) < g.h && (iw as usize) < g.w).then_some((ih as usize, iw as usize))
}

/// Visit every (output index, input index, weight index) triple that contributes.
fn each(g: &Geo, cfg: &Conv2d, mut f: impl FnMut(usize, usize, usize, usize)) {
    for n in 0..g.n {
        for o in 0..g.o {
            let grp = o / g.og;
            for oi in 0..g.ho {
                for oj in 0..g.wo {
                    let yi = ((n * g.o + o) * g.ho + oi) * g.wo + oj;
                    for cl in 0..g.cg {
                        let c = grp * g.cg + cl;
                        for ki in 0..g.kh {
                            for kj in 0..g.kw {
                                if let Some((ih, iw)) = tap(g, cfg, oi, oj, ki, kj) {
                                    let xi = ((n * g.c + c) * g.h + ih) * g.w + iw;
                                    let wi = ((o * g.cg + cl) * g.kh + ki) * g.kw + kj;
                                    f(yi, xi, wi, o);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Convolution output `[N, O, Ho, Wo]`.
pub fn conv2d(x: &RefTensor, w: &RefTensor, b: Option<&RefTensor>, cfg: &Conv2d) -> RefTensor {
    let g = geo(x, w, cfg);
    let mut y = vec![0.0; g.n * g.o * g.ho * g.wo];
    each(&g, cfg, |yi, xi, wi, _| y[yi] += x.data[xi] * w.data[wi]);
    if let Some(b) = b {
        assert_eq!(b.shape, [g.o], "reference: conv bias must be [O]");
        for (i, v) in y.iter_mut().enumerate() {
            *v += b.data[(i / (g.ho * g.wo)) % g.o];
        }
    }
    RefTensor::new(y, &[g.n, g.o, g.ho, g.wo])
}

/// Gradients of [`conv2d`] w.r.t. x, w and the bias given `gy`.
pub fn conv2d_backward(
    x: &RefTensor,
    w: &RefTensor,
    cfg: &Conv2d,
    gy: &RefTensor,
) -> (RefTensor, RefTensor, RefTensor) {
    let g = geo(x, w, cfg);
    let mut gx = vec![0.0; x.numel()];
    let mut gw = vec![0.0; w.numel()];
    let mut gb = vec![0.0; g.o];
    each(&g, cfg, |yi, xi, wi, _| {
        gx[xi] += gy.data[yi] * w.data[wi];
        gw[wi] += gy.data[yi] * x.data[xi];
    });
    for (i, v) in gy.data.iter().enumerate() {
        gb[(i / (g.ho * g.wo)) % g.o] += v;
    }
    (RefTensor::new(gx, &x.shape), RefTensor::new(gw, &w.shape), RefTensor::new(gb, &[g.o]))
}
