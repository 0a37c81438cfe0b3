//! A small pickle writer for crafted `torch.save` files (legacy container: five pickles, then
//! the storages), independent of the reader under test.

/// The opcodes of one pickle, protocol 2.
pub struct Pickle(pub Vec<u8>);

impl Pickle {
    pub fn new() -> Pickle {
        Pickle(b"\x80\x02".to_vec())
    }

    pub fn op(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }

    /// BINUNICODE.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.0.push(b'X');
        self.0.extend((s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    /// BININT.
    pub fn int(&mut self, i: u32) -> &mut Self {
        self.0.push(b'J');
        self.0.extend(i.to_le_bytes());
        self
    }

    /// GLOBAL `module.name`.
    pub fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.0.push(b'c');
        self.0.extend(format!("{module}\n{name}\n").bytes());
        self
    }

    /// The persistent id of a float storage, left on the stack as a tuple.
    pub fn storage_pid(&mut self, key: &str, numel: u32) -> &mut Self {
        self.op(b"(").str("storage").global("torch", "FloatStorage").str(key).str("cpu").int(numel).op(b"t")
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`.
    pub fn tensor(&mut self, key: &str, numel: u32, shape: &[u32], stride: &[u32]) -> &mut Self {
        self.global("torch._utils", "_rebuild_tensor_v2").op(b"(");
        self.storage_pid(key, numel).op(b"Q").int(0).op(b"(");
        shape.iter().for_each(|&d| {
            self.int(d);
        });
        self.op(b"t(");
        stride.iter().for_each(|&d| {
            self.int(d);
        });
        self.op(b"t\x89").global("collections", "OrderedDict").op(b")R").op(b"tR")
    }

    pub fn finish(&mut self) -> Vec<u8> {
        self.0.push(b'.');
        std::mem::take(&mut self.0)
    }
}

/// The three pickles before the object: magic number, protocol version 1001, sys_info.
pub fn legacy_head() -> Vec<u8> {
    let mut out = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.".to_vec();
    out.extend(b"\x80\x02M\xe9\x03.");
    out.extend(b"\x80\x02}.");
    out
}

/// A legacy `torch.save` file around `object`, with float storages `(key, numel)` (zeros).
pub fn legacy(object: &[u8], storages: &[(&str, u32)]) -> Vec<u8> {
    let mut out = legacy_head();
    out.extend_from_slice(object);
    let mut keys = Pickle::new();
    keys.op(b"](");
    storages.iter().for_each(|(k, _)| {
        keys.str(k);
    });
    out.extend(keys.op(b"e").finish());
    for (_, n) in storages {
        out.extend((*n as u64).to_le_bytes());
        out.extend(std::iter::repeat_n(0u8, *n as usize * 4));
    }
    out
}
