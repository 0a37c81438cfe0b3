// Copies of a window along one axis (slice, concat and their backward).
// The window is (O, len, I); `src_len`/`dst_len` are the full axis lengths and `start` the
// window's first index on the side that is larger.
//   axis_read:  dst (O, len, I)     <- src (O, src_len, I)[:, start:start+len, :]
//   axis_write: dst (O, dst_len, I)[:, start:start+len, :] <- src (O, len, I)

struct Params {
    outer: u32,
    len: u32,
    inner: u32,
    start: u32,
    src_len: u32,
    dst_len: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// Elements of `act` (f16 in the half variant), copied as they are.
@group(0) @binding(1) var<storage, read> src: array<act>;
@group(0) @binding(2) var<storage, read_write> dst: array<act>;

@compute @workgroup_size(WG1)
fn axis_read(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = linear_index(wid, nwg, lid);
    if (j >= p.outer * p.len * p.inner) {
        return;
    }
    let o = j / (p.len * p.inner);
    let l = (j / p.inner) % p.len;
    let i = j % p.inner;
    dst[j] = src[(o * p.src_len + p.start + l) * p.inner + i];
}

@compute @workgroup_size(WG1)
fn axis_write(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = linear_index(wid, nwg, lid);
    if (j >= p.outer * p.len * p.inner) {
        return;
    }
    let o = j / (p.len * p.inner);
    let l = (j / p.inner) % p.len;
    let i = j % p.inner;
    dst[(o * p.dst_len + p.start + l) * p.inner + i] = src[j];
}
