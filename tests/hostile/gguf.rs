//! A small GGUF writer for crafted files, independent of the reader under test.

pub struct Gguf {
    kv: Vec<u8>,
    n_kv: u64,
    infos: Vec<u8>,
    n_tensors: u64,
    data: Vec<u8>,
}

fn gstr(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

impl Gguf {
    pub fn new() -> Gguf {
        Gguf { kv: Vec::new(), n_kv: 0, infos: Vec::new(), n_tensors: 0, data: Vec::new() }
    }

    /// A key with value type `ty` and its encoded value.
    pub fn kv(&mut self, key: &str, ty: u32, value: &[u8]) -> &mut Self {
        gstr(&mut self.kv, key);
        self.kv.extend(ty.to_le_bytes());
        self.kv.extend_from_slice(value);
        self.n_kv += 1;
        self
    }

    pub fn u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.kv(key, 4, &v.to_le_bytes())
    }

    pub fn f32(&mut self, key: &str, v: f32) -> &mut Self {
        self.kv(key, 6, &v.to_le_bytes())
    }

    pub fn str(&mut self, key: &str, v: &str) -> &mut Self {
        let mut b = Vec::new();
        gstr(&mut b, v);
        self.kv(key, 8, &b)
    }

    /// An f32 tensor of zeros with `dims` innermost-first, data aligned to 32.
    pub fn f32_tensor(&mut self, name: &str, dims: &[u64]) -> &mut Self {
        gstr(&mut self.infos, name);
        self.infos.extend((dims.len() as u32).to_le_bytes());
        dims.iter().for_each(|d| self.infos.extend(d.to_le_bytes()));
        self.infos.extend(0u32.to_le_bytes());
        self.infos.extend((self.data.len() as u64).to_le_bytes());
        let n: u64 = dims.iter().product();
        self.data.resize(self.data.len() + (n as usize * 4).div_ceil(32) * 32, 0);
        self.n_tensors += 1;
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(self.n_tensors.to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kv);
        out.extend(&self.infos);
        out.resize(out.len().div_ceil(32) * 32, 0);
        out.extend(&self.data);
        out
    }
}
