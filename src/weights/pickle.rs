//! A restricted unpickler for `torch.save` output. It executes nothing: it is a small stack
//! machine over the opcodes torch's pickler emits (protocols 2 to 4), and the only callables it
//! knows are an allow-list of globals (`collections.OrderedDict`, torch's tensor rebuild
//! functions, the typed `torch.*Storage` classes), each interpreted here rather than imported.
//! Any other opcode or global is refused with a message naming it, so a hostile checkpoint
//! (`os.system`, `builtins.eval`, a pickled `nn.Module`) is an error, never code execution.
//!
//! Every length read from the stream is checked against the bytes left before anything is
//! allocated, and containers are shared (`Rc`) so memo references cost no copies: a crafted
//! pickle cannot make this allocate more than a small multiple of its own size.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::WeightDType;

/// A dict or list that memo references share, as in Python (torch memoizes a dict before it
/// fills it, so copying at `BINPUT` would lose the items).
pub type Shared<T> = Rc<RefCell<T>>;

/// A storage named by a persistent id: `('storage', torch.FloatStorage, key, location, numel)`.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    pub key: String,
    pub dtype: WeightDType,
    /// Element count the pickle claims; the reader checks it against the bytes it finds.
    pub numel: u64,
}

/// A tensor view from `torch._utils._rebuild_tensor_v2`: storage, offset and strides in elements.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub offset: u64,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

/// The allow-listed globals, as values a `REDUCE` can call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildTensor,
    RebuildParameter,
    Storage(WeightDType),
    Device,
}

/// What the stack machine builds.
#[derive(Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits, as its little-endian two's-complement bytes.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Rc<Vec<Value>>),
    List(Shared<Vec<Value>>),
    /// Keys in insertion order (an OrderedDict and a dict look the same here).
    Dict(Shared<Vec<(Value, Value)>>),
    Global(Global),
    Storage(StorageRef),
    Tensor(Rc<TensorRef>),
    /// `torch.device('cpu')`: kept as its string.
    Device(String),
}

impl Value {
    /// Short type name for error messages (never the contents: they may be huge or cyclic).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
            Value::Device(_) => "device",
        }
    }
}

/// The `torch.*Storage` classes and their element types.
fn storage_dtype(name: &str) -> Option<WeightDType> {
    Some(match name {
        "FloatStorage" => WeightDType::F32,
        "DoubleStorage" => WeightDType::F64,
        "HalfStorage" => WeightDType::F16,
        "BFloat16Storage" => WeightDType::BF16,
        "LongStorage" => WeightDType::I64,
        "IntStorage" => WeightDType::I32,
        "ShortStorage" => WeightDType::I16,
        "CharStorage" => WeightDType::I8,
        "ByteStorage" => WeightDType::U8,
        "BoolStorage" => WeightDType::Bool,
        _ => return None,
    })
}

fn global(module: &str, name: &str) -> Result<Global, String> {
    Ok(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch", "device") => Global::Device,
        ("torch", s) if storage_dtype(s).is_some() => Global::Storage(storage_dtype(s).unwrap()),
        _ => return Err(format!("unsupported pickle global {module}.{name}")),
    })
}

/// Nesting deeper than this in the result is refused (a crafted pickle can build cycles).
pub const MAX_DEPTH: usize = 64;

/// Cursor over the pickle bytes; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return Err(format!("pickle truncated: needs {n} bytes at byte {} but {left} remain", self.pos));
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn line(&mut self) -> Result<&'a str, String> {
        let rest = &self.buf[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or("pickle truncated: GLOBAL without newline")?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| "GLOBAL name is not UTF-8".to_string())?;
        self.pos += n + 1;
        Ok(s)
    }
    fn string(&mut self, n: u64) -> Result<String, String> {
        let at = self.pos;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("string at byte {at} is not UTF-8"))
    }
}

/// The result of [`load`].
pub struct Loaded {
    pub value: Value,
    /// Bytes consumed (the legacy format concatenates several pickles).
    pub end: usize,
    /// Every storage a persistent id named, in stream order (with repeats), so the caller
    /// knows each storage's dtype without walking the object graph.
    pub storages: Vec<StorageRef>,
}

/// Unpickle one object from the start of `buf`.
pub fn load(buf: &[u8]) -> Result<Loaded, String> {
    let mut storages = Vec::new();
    let mut r = Reader { buf, pos: 0 };
    let mut stack: Vec<Value> = Vec::new();
    let mut marks: Vec<usize> = Vec::new();
    let mut memo: HashMap<u32, Value> = HashMap::new();
    // Pops everything above the last MARK.
    fn pop_mark(stack: &mut Vec<Value>, marks: &mut Vec<usize>, op: &str) -> Result<Vec<Value>, String> {
        let m = marks.pop().ok_or_else(|| format!("{op} without MARK"))?;
        if m > stack.len() {
            return Err(format!("{op}: MARK above the stack top"));
        }
        Ok(stack.split_off(m))
    }
    fn pop(stack: &mut Vec<Value>, op: &str) -> Result<Value, String> {
        stack.pop().ok_or_else(|| format!("{op} on an empty stack"))
    }
    fn top<'s>(stack: &'s mut [Value], op: &str) -> Result<&'s mut Value, String> {
        stack.last_mut().ok_or_else(|| format!("{op} on an empty stack"))
    }
    fn set_items(target: &Value, items: Vec<Value>, op: &str) -> Result<(), String> {
        let Value::Dict(d) = target else {
            return Err(format!("{op} on a {}, not a dict", target.kind()));
        };
        if !items.len().is_multiple_of(2) {
            return Err(format!("{op} with an odd number of items"));
        }
        let mut d = d.borrow_mut();
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            // Python semantics: a repeated key replaces the value in place.
            match d.iter_mut().find(|(old, _)| same_key(old, &k)) {
                Some(slot) => slot.1 = v,
                None => d.push((k, v)),
            }
        }
        Ok(())
    }
    fn append(target: &Value, items: Vec<Value>, op: &str) -> Result<(), String> {
        let Value::List(l) = target else {
            return Err(format!("{op} on a {}, not a list", target.kind()));
        };
        l.borrow_mut().extend(items);
        Ok(())
    }
    loop {
        let at = r.pos;
        let op = r.u8()?;
        match op {
            0x80 => {
                let p = r.u8()?;
                if p > 5 {
                    return Err(format!("pickle protocol {p} is not supported"));
                }
            }
            // FRAME: a length prefix for buffered reading; the ops inside follow as usual.
            0x95 => {
                r.u64()?;
            }
            b'}' => stack.push(Value::Dict(Default::default())),
            b']' => stack.push(Value::List(Default::default())),
            b')' => stack.push(Value::Tuple(Rc::new(Vec::new()))),
            b'(' => marks.push(stack.len()),
            b'J' => stack.push(Value::Int(r.u32()? as i32 as i64)),
            b'K' => stack.push(Value::Int(r.u8()? as i64)),
            b'M' => stack.push(Value::Int(r.u16()? as i64)),
            0x8a => {
                let n = r.u8()? as usize;
                let b = r.take(n as u64)?;
                if n > 8 {
                    // Only the legacy magic number is this long; kept as its bytes.
                    stack.push(Value::BigInt(b.to_vec()));
                } else {
                    let mut v = if b.last().is_some_and(|&x| x & 0x80 != 0) { [0xffu8; 8] } else { [0u8; 8] };
                    v[..n].copy_from_slice(b);
                    stack.push(Value::Int(i64::from_le_bytes(v)));
                }
            }
            b'G' => stack.push(Value::Float(f64::from_be_bytes(r.take(8)?.try_into().unwrap()))),
            0x8c => {
                let n = r.u8()? as u64;
                stack.push(Value::Str(r.string(n)?));
            }
            b'X' => {
                let n = r.u32()? as u64;
                stack.push(Value::Str(r.string(n)?));
            }
            0x8d => {
                let n = r.u64()?;
                stack.push(Value::Str(r.string(n)?));
            }
            // BINSTRING / SHORT_BINSTRING: Python 2 str; torch keys are ASCII.
            b'T' => {
                let n = r.u32()? as u64;
                stack.push(Value::Str(r.string(n)?));
            }
            b'U' => {
                let n = r.u8()? as u64;
                stack.push(Value::Str(r.string(n)?));
            }
            b'C' => {
                let n = r.u8()? as u64;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'B' => {
                let n = r.u32()? as u64;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            0x8e => {
                let n = r.u64()?;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'q' | b'r' | 0x94 => {
                let idx = match op {
                    b'q' => r.u8()? as u32,
                    b'r' => r.u32()?,
                    _ => memo.len() as u32,
                };
                let v = top(&mut stack, "BINPUT")?.clone();
                memo.insert(idx, v);
            }
            b'h' | b'j' => {
                let idx = if op == b'h' { r.u8()? as u32 } else { r.u32()? };
                let v = memo
                    .get(&idx)
                    .ok_or_else(|| format!("BINGET of unknown memo index {idx} at byte {at}"))?;
                stack.push(v.clone());
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err(format!("TUPLE{n} on a stack of {}", stack.len()));
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(Value::Tuple(Rc::new(items)));
            }
            b't' => {
                let items = pop_mark(&mut stack, &mut marks, "TUPLE")?;
                stack.push(Value::Tuple(Rc::new(items)));
            }
            b's' => {
                let v = pop(&mut stack, "SETITEM")?;
                let k = pop(&mut stack, "SETITEM")?;
                set_items(top(&mut stack, "SETITEM")?, vec![k, v], "SETITEM")?;
            }
            b'u' => {
                let items = pop_mark(&mut stack, &mut marks, "SETITEMS")?;
                set_items(top(&mut stack, "SETITEMS")?, items, "SETITEMS")?;
            }
            b'a' => {
                let v = pop(&mut stack, "APPEND")?;
                append(top(&mut stack, "APPEND")?, vec![v], "APPEND")?;
            }
            b'e' => {
                let items = pop_mark(&mut stack, &mut marks, "APPENDS")?;
                append(top(&mut stack, "APPENDS")?, items, "APPENDS")?;
            }
            b'N' => stack.push(Value::None),
            0x88 => stack.push(Value::Bool(true)),
            0x89 => stack.push(Value::Bool(false)),
            b'0' => {
                pop(&mut stack, "POP")?;
            }
            b'1' => {
                pop_mark(&mut stack, &mut marks, "POP_MARK")?;
            }
            b'2' => {
                let v = top(&mut stack, "DUP")?.clone();
                stack.push(v);
            }
            b'c' => {
                let module = r.line()?.to_string();
                let name = r.line()?;
                stack.push(Value::Global(global(&module, name)?));
            }
            0x93 => {
                let name = pop(&mut stack, "STACK_GLOBAL")?;
                let module = pop(&mut stack, "STACK_GLOBAL")?;
                let (Value::Str(module), Value::Str(name)) = (module, name) else {
                    return Err("STACK_GLOBAL operands are not strings".into());
                };
                stack.push(Value::Global(global(&module, &name)?));
            }
            b'R' | 0x81 => {
                let args = pop(&mut stack, "REDUCE")?;
                let f = pop(&mut stack, "REDUCE")?;
                let Value::Tuple(args) = args else {
                    return Err(format!("REDUCE arguments are a {}, not a tuple", args.kind()));
                };
                let Value::Global(g) = f else {
                    return Err(format!("REDUCE calls a {}, not an allowed global", f.kind()));
                };
                if op == 0x81 && g != Global::OrderedDict {
                    return Err(format!("NEWOBJ of {g:?} is not supported"));
                }
                stack.push(call(g, &args)?);
            }
            // BUILD sets attributes: on a state dict that is `_metadata` (module versions), on a
            // parameter its Python attributes. Neither affects the numbers, so it is dropped.
            b'b' => {
                let _state = pop(&mut stack, "BUILD")?;
                let t = top(&mut stack, "BUILD")?;
                if !matches!(t, Value::Dict(_) | Value::Tensor(_)) {
                    return Err(format!("BUILD on a {} is not supported", t.kind()));
                }
            }
            b'Q' => {
                let pid = pop(&mut stack, "BINPERSID")?;
                let st = persistent(&pid)?;
                storages.push(st.clone());
                stack.push(Value::Storage(st));
            }
            b'.' => {
                let v = pop(&mut stack, "STOP")?;
                return Ok(Loaded { value: v, end: r.pos, storages });
            }
            other => {
                return Err(format!(
                    "unsupported pickle opcode 0x{other:02x}{} at byte {at}",
                    opcode_name(other).map(|n| format!(" ({n})")).unwrap_or_default()
                ));
            }
        }
    }
}

/// Names of the opcodes this machine refuses, for the error message.
fn opcode_name(op: u8) -> Option<&'static str> {
    Some(match op {
        b'i' => "INST",
        b'o' => "OBJ",
        b'I' => "INT",
        b'L' => "LONG",
        b'F' => "FLOAT",
        b'S' => "STRING",
        b'V' => "UNICODE",
        b'P' => "PERSID",
        b'g' => "GET",
        b'p' => "PUT",
        b'd' => "DICT",
        b'l' => "LIST",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x8b => "LONG4",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => return None,
    })
}

/// Dict keys compare by value for the scalar types keys are made of.
fn same_key(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Str(a), Value::Str(b)) => a == b,
        (Value::Int(a), Value::Int(b)) => a == b,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::None, Value::None) => true,
        _ => false,
    }
}

/// A non-negative integer that must fit an index.
fn as_u64(v: &Value, what: &str) -> Result<u64, String> {
    match v {
        Value::Int(i) if *i >= 0 => Ok(*i as u64),
        _ => Err(format!("{what} is a {} (expected a non-negative int)", v.kind())),
    }
}

fn as_dims(v: &Value, what: &str) -> Result<Vec<usize>, String> {
    let Value::Tuple(t) = v else {
        return Err(format!("{what} is a {}, not a tuple", v.kind()));
    };
    t.iter()
        .map(|d| as_u64(d, what).and_then(|d| usize::try_from(d).map_err(|_| format!("{what} overflows"))))
        .collect()
}

/// Interpret a call to an allow-listed global.
fn call(g: Global, args: &[Value]) -> Result<Value, String> {
    match g {
        Global::OrderedDict => {
            if !args.is_empty() {
                return Err("OrderedDict called with arguments".into());
            }
            Ok(Value::Dict(Default::default()))
        }
        Global::RebuildTensorV2 | Global::RebuildTensor => {
            if args.len() < 4 {
                return Err(format!("_rebuild_tensor with {} arguments (expected at least 4)", args.len()));
            }
            let Value::Storage(storage) = &args[0] else {
                return Err(format!("_rebuild_tensor of a {}, not a storage", args[0].kind()));
            };
            let offset = as_u64(&args[1], "tensor storage offset")?;
            let shape = as_dims(&args[2], "tensor size")?;
            let stride = as_dims(&args[3], "tensor stride")?;
            if shape.len() != stride.len() {
                return Err(format!("tensor size has {} dims but stride {}", shape.len(), stride.len()));
            }
            Ok(Value::Tensor(Rc::new(TensorRef { storage: storage.clone(), offset, shape, stride })))
        }
        Global::RebuildParameter => match args.first() {
            Some(t @ Value::Tensor(_)) => Ok(t.clone()),
            _ => Err("_rebuild_parameter of something that is not a tensor".into()),
        },
        Global::Device => match args.first() {
            Some(Value::Str(s)) => Ok(Value::Device(s.clone())),
            _ => Err("torch.device without a string argument".into()),
        },
        Global::Storage(dt) => Err(format!("calling a storage class ({dt:?}) is not supported")),
    }
}

/// `('storage', torch.FloatStorage, key, location, numel[, view_metadata])`.
fn persistent(pid: &Value) -> Result<StorageRef, String> {
    let Value::Tuple(t) = pid else {
        return Err(format!("persistent id is a {}, not a tuple", pid.kind()));
    };
    if t.len() < 5 || !matches!(&t[0], Value::Str(s) if s == "storage") {
        return Err("persistent id is not a ('storage', type, key, location, numel) tuple".into());
    }
    let Value::Global(Global::Storage(dtype)) = t[1] else {
        return Err(format!("persistent id names a {}, not a torch storage type", t[1].kind()));
    };
    let key = match &t[2] {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        v => return Err(format!("storage key is a {}", v.kind())),
    };
    if t.len() > 5 && !matches!(t[5], Value::None) {
        return Err(format!("storage '{key}' is a view of another storage (not supported)"));
    }
    let numel = as_u64(&t[4], "storage size")?;
    Ok(StorageRef { key, dtype, numel })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_dict_of_ints_and_strings() {
        // {'a': 1, 'b': [2, 'x']} in protocol 2 with memo ops.
        let p = b"\x80\x02}q\x00(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00b]q\x01(K\x02X\x01\x00\x00\x00xeu.";
        let Loaded { value: v, end, .. } = load(p).unwrap();
        assert_eq!(end, p.len());
        let Value::Dict(d) = v else { panic!() };
        let d = d.borrow();
        assert_eq!(d.len(), 2);
        assert!(matches!(&d[0], (Value::Str(k), Value::Int(1)) if k == "a"));
        let Value::List(l) = &d[1].1 else { panic!() };
        assert_eq!(l.borrow().len(), 2);
    }

    #[test]
    fn refuses_other_globals_and_opcodes() {
        let e = load(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00lsR.").err().unwrap();
        assert_eq!(e, "unsupported pickle global os.system");
        let e = load(b"\x80\x02cbuiltins\neval\n.").err().unwrap();
        assert!(e.contains("builtins.eval"), "{e}");
        let e = load(b"\x80\x02(i__main__\nX\n.").err().unwrap();
        assert!(e.contains("INST"), "{e}");
    }

    #[test]
    fn truncation_and_huge_lengths_are_errors() {
        let p = b"\x80\x02X\xff\xff\xff\xffab.";
        assert!(load(p).err().unwrap().contains("truncated"));
        for n in 0..10 {
            assert!(load(&b"\x80\x02}q\x00X\x01\x00\x00\x00aK\x01s."[..n]).is_err());
        }
        assert!(load(b"\x80\x02h\x05.").err().unwrap().contains("memo"));
        assert!(load(b"\x80\x02s.").is_err());
    }
}
