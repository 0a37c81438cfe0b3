//! A restricted unpickler for `torch.save` output. It executes nothing: it is a small stack
//! machine over the opcodes torch's pickler emits (protocols 2 to 4), and the only callables it
//! knows are an allow-list of globals (`collections.OrderedDict`, torch's tensor rebuild
//! functions, the typed `torch.*Storage` classes), each interpreted here rather than imported.
//! Any other opcode or global is refused with a message naming it, so a hostile checkpoint
//! (`os.system`, `builtins.eval`, a pickled `nn.Module`) is an error, never code execution.
//!
//! A hostile pickle is also bounded in time and memory: every length read from the stream is
//! checked against the bytes left before anything is allocated, memo references share values
//! instead of copying them, nesting depth is checked at each insertion, and everything kept is
//! charged to a [`Budget`] proportional to the input's size (see [`value`]).

mod call;
pub mod value;

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

pub use value::{Budget, Dict, Global, List, StorageRef, TensorRef, Tuple, Value, MAX_DEPTH};

use value::cost;

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
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let b = self.take(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.arr()?))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn line(&mut self) -> Result<&'a str, String> {
        let rest = &self.buf[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or("pickle truncated: GLOBAL without newline")?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| "GLOBAL name is not UTF-8".to_string())?;
        self.pos += n + 1;
        Ok(s)
    }
    fn string(&mut self, n: u64) -> Result<Rc<str>, String> {
        let at = self.pos;
        let b = self.take(n)?;
        std::str::from_utf8(b).map(Rc::from).map_err(|_| format!("string at byte {at} is not UTF-8"))
    }
}

/// The result of [`load`].
pub struct Loaded {
    pub value: Value,
    /// Bytes consumed (the legacy format concatenates several pickles).
    pub end: usize,
    /// Every storage a persistent id named, in stream order (with repeats), so the caller
    /// knows each storage's dtype without walking the object graph.
    pub storages: Vec<Arc<StorageRef>>,
}

/// Make room for one more element of `v`, charging the budget for the vector's new capacity
/// (the stacks are charged for what they hold at their fullest, not for every push).
fn grow<T>(v: &mut Vec<T>, budget: &mut Budget) -> Result<(), String> {
    if v.len() == v.capacity() {
        let extra = v.capacity().max(4);
        budget.charge(extra * std::mem::size_of::<T>())?;
        v.reserve_exact(extra);
    }
    Ok(())
}

/// The memo: indices are dense in practice (BINPUT counts up, MEMOIZE appends), so they live
/// in a vector (one value slot an entry); a crafted far index goes to a hash map instead.
#[derive(Default)]
struct Memo {
    dense: Vec<Value>,
    sparse: HashMap<u32, Value>,
}

impl Memo {
    fn len(&self) -> usize {
        self.dense.len() + self.sparse.len()
    }

    fn get(&self, idx: u32) -> Option<&Value> {
        self.dense.get(idx as usize).or_else(|| self.sparse.get(&idx))
    }

    fn put(&mut self, idx: u32, v: Value, budget: &mut Budget) -> Result<(), String> {
        let i = idx as usize;
        if i < self.dense.len() {
            self.dense[i] = v;
        } else if i == self.dense.len() {
            grow(&mut self.dense, budget)?;
            self.sparse.remove(&idx);
            self.dense.push(v);
        } else if self.sparse.insert(idx, v).is_none() {
            budget.charge(cost::MEMO)?;
        }
        Ok(())
    }
}

/// The stack machine's state.
struct Machine<'a> {
    r: Reader<'a>,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: Memo,
    storages: Vec<Arc<StorageRef>>,
    budget: Budget,
}

/// Unpickle one object from the start of `buf`.
pub fn load(buf: &[u8]) -> Result<Loaded, String> {
    let mut m = Machine {
        r: Reader { buf, pos: 0 },
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Memo::default(),
        storages: Vec::new(),
        budget: Budget::for_input(buf.len()),
    };
    loop {
        let at = m.r.pos;
        let op = m.r.u8()?;
        if op == b'.' {
            let value = m.pop("STOP")?;
            return Ok(Loaded { value, end: m.r.pos, storages: m.storages });
        }
        m.step(op, at)?;
    }
}

impl Machine<'_> {
    fn push(&mut self, v: Value) -> Result<(), String> {
        grow(&mut self.stack, &mut self.budget)?;
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self, op: &str) -> Result<Value, String> {
        self.stack.pop().ok_or_else(|| format!("{op} on an empty stack"))
    }

    fn top(&self, op: &str) -> Result<&Value, String> {
        self.stack.last().ok_or_else(|| format!("{op} on an empty stack"))
    }

    /// Everything above the last MARK.
    fn pop_mark(&mut self, op: &str) -> Result<Vec<Value>, String> {
        let m = self.marks.pop().ok_or_else(|| format!("{op} without MARK"))?;
        if m > self.stack.len() {
            return Err(format!("{op}: MARK above the stack top"));
        }
        Ok(self.stack.split_off(m))
    }

    /// A payload of `n` bytes behind a reference count.
    fn payload(&mut self, n: u64) -> Result<(), String> {
        self.budget.charge(cost::PAYLOAD.saturating_add(n as usize))
    }

    fn step(&mut self, op: u8, at: usize) -> Result<(), String> {
        if let Some(v) = self.scalar(op)? {
            return self.push(v);
        }
        match op {
            0x80 => {
                let p = self.r.u8()?;
                if p > 5 {
                    return Err(format!("pickle protocol {p} is not supported"));
                }
            }
            // FRAME: a length prefix for buffered reading; the ops inside follow as usual.
            0x95 => {
                self.r.u64()?;
            }
            b'(' => {
                grow(&mut self.marks, &mut self.budget)?;
                self.marks.push(self.stack.len());
            }
            b'0' => {
                self.pop("POP")?;
            }
            b'1' => {
                self.pop_mark("POP_MARK")?;
            }
            b'2' => {
                let v = self.top("DUP")?.clone();
                self.push(v)?;
            }
            b'q' | b'r' | 0x94 | b'h' | b'j' => self.memo_op(op, at)?,
            b'}' | b']' | b')' | 0x85..=0x87 | b't' | b's' | b'u' | b'a' | b'e' => self.container(op)?,
            b'c' | 0x93 | b'R' | 0x81 | b'b' | b'Q' => self.call_op(op)?,
            other => {
                return Err(format!(
                    "unsupported pickle opcode 0x{other:02x}{} at byte {at}",
                    opcode_name(other).map(|n| format!(" ({n})")).unwrap_or_default()
                ));
            }
        }
        Ok(())
    }

    /// The opcodes that push one scalar, string or bytes value read from the stream.
    fn scalar(&mut self, op: u8) -> Result<Option<Value>, String> {
        let r = &mut self.r;
        let v = match op {
            b'N' => Value::None,
            0x88 => Value::Bool(true),
            0x89 => Value::Bool(false),
            b'J' => Value::Int(r.u32()? as i32 as i64),
            b'K' => Value::Int(r.u8()? as i64),
            b'M' => Value::Int(r.u16()? as i64),
            0x8a => {
                let n = r.u8()? as usize;
                let b = r.take(n as u64)?;
                if n > 8 {
                    // Only the legacy magic number is this long; kept as its bytes.
                    let v = Value::BigInt(Rc::from(b));
                    self.payload(n as u64)?;
                    v
                } else {
                    let mut v = if b.last().is_some_and(|&x| x & 0x80 != 0) { [0xffu8; 8] } else { [0u8; 8] };
                    v[..n].copy_from_slice(b);
                    Value::Int(i64::from_le_bytes(v))
                }
            }
            b'G' => Value::Float(f64::from_be_bytes(r.arr()?)),
            // SHORT_BINUNICODE, BINUNICODE, BINUNICODE8; BINSTRING / SHORT_BINSTRING are
            // Python 2 str (torch keys are ASCII).
            0x8c | b'X' | 0x8d | b'T' | b'U' => {
                let n = match op {
                    0x8c | b'U' => r.u8()? as u64,
                    b'X' | b'T' => r.u32()? as u64,
                    _ => r.u64()?,
                };
                let s = r.string(n)?;
                self.payload(n)?;
                Value::Str(s)
            }
            b'C' | b'B' | 0x8e => {
                let n = match op {
                    b'C' => r.u8()? as u64,
                    b'B' => r.u32()? as u64,
                    _ => r.u64()?,
                };
                let b = Value::Bytes(Rc::from(r.take(n)?));
                self.payload(n)?;
                b
            }
            _ => return Ok(None),
        };
        Ok(Some(v))
    }

    /// BINPUT, LONG_BINPUT, MEMOIZE, BINGET, LONG_BINGET. A memo entry shares its value.
    fn memo_op(&mut self, op: u8, at: usize) -> Result<(), String> {
        match op {
            b'q' | b'r' | 0x94 => {
                let idx = match op {
                    b'q' => self.r.u8()? as u32,
                    b'r' => self.r.u32()?,
                    _ => self.memo.len() as u32,
                };
                let v = self.top("BINPUT")?.clone();
                self.memo.put(idx, v, &mut self.budget)?;
            }
            _ => {
                let idx = if op == b'h' { self.r.u8()? as u32 } else { self.r.u32()? };
                let v = self
                    .memo
                    .get(idx)
                    .ok_or_else(|| format!("BINGET of unknown memo index {idx} at byte {at}"))?
                    .clone();
                self.push(v)?;
            }
        }
        Ok(())
    }

    /// Building tuples, lists and dicts.
    fn container(&mut self, op: u8) -> Result<(), String> {
        match op {
            b'}' => {
                self.budget.charge(cost::CONTAINER)?;
                self.push(Value::Dict(Rc::new(Dict::new())))?;
            }
            b']' => {
                self.budget.charge(cost::CONTAINER)?;
                self.push(Value::List(Rc::new(List::new())))?;
            }
            b')' => self.tuple(Vec::new())?,
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if self.stack.len() < n {
                    return Err(format!("TUPLE{n} on a stack of {}", self.stack.len()));
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.tuple(items)?;
            }
            b't' => {
                let items = self.pop_mark("TUPLE")?;
                self.tuple(items)?;
            }
            b's' => {
                let v = self.pop("SETITEM")?;
                let k = self.pop("SETITEM")?;
                self.set_items(vec![k, v], "SETITEM")?;
            }
            b'u' => {
                let items = self.pop_mark("SETITEMS")?;
                self.set_items(items, "SETITEMS")?;
            }
            b'a' => {
                let v = self.pop("APPEND")?;
                self.append(vec![v], "APPEND")?;
            }
            _ => {
                let items = self.pop_mark("APPENDS")?;
                self.append(items, "APPENDS")?;
            }
        }
        Ok(())
    }

    fn tuple(&mut self, items: Vec<Value>) -> Result<(), String> {
        self.budget.charge(cost::CONTAINER + items.len() * std::mem::size_of::<Value>())?;
        let t = Tuple::new(items)?;
        self.push(Value::Tuple(Rc::new(t)))
    }

    fn set_items(&mut self, items: Vec<Value>, op: &str) -> Result<(), String> {
        let Value::Dict(d) = self.top(op)? else {
            return Err(format!("{op} on a {}, not a dict", self.top(op)?.kind()));
        };
        if !items.len().is_multiple_of(2) {
            return Err(format!("{op} with an odd number of items"));
        }
        let d = d.clone();
        let mut it = items.into_iter();
        let mut pairs = Vec::with_capacity(it.len() / 2);
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        let added = d.set(pairs)?;
        self.budget.charge(added * cost::DICT_ENTRY)
    }

    fn append(&mut self, items: Vec<Value>, op: &str) -> Result<(), String> {
        let Value::List(l) = self.top(op)? else {
            return Err(format!("{op} on a {}, not a list", self.top(op)?.kind()));
        };
        let l = l.clone();
        self.budget.charge(items.len() * cost::LIST_ITEM)?;
        l.extend(items)
    }

    /// GLOBAL, STACK_GLOBAL, REDUCE, NEWOBJ, BUILD and BINPERSID: the allow-listed calls.
    fn call_op(&mut self, op: u8) -> Result<(), String> {
        match op {
            b'c' => {
                let module = self.r.line()?;
                let name = self.r.line()?;
                self.push(Value::Global(call::global(module, name)?))?;
            }
            0x93 => {
                let name = self.pop("STACK_GLOBAL")?;
                let module = self.pop("STACK_GLOBAL")?;
                let (Value::Str(module), Value::Str(name)) = (module, name) else {
                    return Err("STACK_GLOBAL operands are not strings".into());
                };
                self.push(Value::Global(call::global(&module, &name)?))?;
            }
            b'R' | 0x81 => {
                let args = self.pop("REDUCE")?;
                let f = self.pop("REDUCE")?;
                let Value::Tuple(args) = args else {
                    return Err(format!("REDUCE arguments are a {}, not a tuple", args.kind()));
                };
                let Value::Global(g) = f else {
                    return Err(format!("REDUCE calls a {}, not an allowed global", f.kind()));
                };
                if op == 0x81 && g != Global::OrderedDict {
                    return Err(format!("NEWOBJ of {g:?} is not supported"));
                }
                self.budget.charge(cost::CONTAINER)?;
                let v = call::call(g, &args)?;
                self.push(v)?;
            }
            // BUILD sets attributes: on a state dict that is `_metadata` (module versions), on a
            // parameter its Python attributes. Neither affects the numbers, so it is dropped.
            b'b' => {
                let _state = self.pop("BUILD")?;
                let t = self.top("BUILD")?;
                if !matches!(t, Value::Dict(_) | Value::Tensor(_)) {
                    return Err(format!("BUILD on a {} is not supported", t.kind()));
                }
            }
            _ => {
                let pid = self.pop("BINPERSID")?;
                let st = Arc::new(call::persistent(&pid)?);
                // The key is copied out of the pickle's string: charged, so a memoized id
                // with a huge key cannot be turned into many copies.
                self.budget.charge(cost::PAYLOAD + st.key.len() + std::mem::size_of::<usize>())?;
                self.storages.push(st.clone());
                self.push(Value::Storage(st))?;
            }
        }
        Ok(())
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
        let d = d.entries();
        assert_eq!(d.len(), 2);
        assert!(matches!(&d[0], (Value::Str(k), Value::Int(1)) if &**k == "a"));
        let Value::List(l) = &d[1].1 else { panic!() };
        assert_eq!(l.items().len(), 2);
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

    #[test]
    fn a_repeated_key_replaces_its_value() {
        // {'a': 1, 'a': 2} -> {'a': 2}, one entry.
        let Value::Dict(d) =
            load(b"\x80\x02}(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00aK\x02u.").unwrap().value
        else {
            panic!()
        };
        assert_eq!(d.entries().len(), 1);
        assert!(matches!(d.get("a"), Some(Value::Int(2))));
    }

    #[test]
    fn cycles_and_changes_after_nesting_are_refused() {
        // l = []; l.append(l)
        let e = load(b"\x80\x02]q\x00h\x00a.").err().unwrap();
        assert!(e.contains("appended to itself"), "{e}");
        // d = {}; t = (d,); then d['k'] = t: a cycle through a tuple.
        let e = load(b"\x80\x02}q\x00h\x00\x85q\x010X\x01\x00\x00\x00kh\x01s.").err().unwrap();
        assert!(e.contains("modified after being placed inside"), "{e}");
    }

    #[test]
    fn depth_is_limited_while_parsing() {
        // MAX_DEPTH lists, each appended into the one below: accepted; one more is refused.
        let nest = |n: usize| {
            let mut p = b"\x80\x02".to_vec();
            p.extend(std::iter::repeat_n(b']', n));
            p.extend(std::iter::repeat_n(b'a', n - 1));
            p.push(b'.');
            load(&p)
        };
        assert!(nest(MAX_DEPTH).is_ok());
        let e = nest(MAX_DEPTH + 1).err().unwrap();
        assert!(e.contains("nested deeper than 64"), "{e}");
    }
}
