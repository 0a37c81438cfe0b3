//! What the unpickler builds, and the two rules that keep a hostile pickle small:
//!
//! - **Sharing, never copying.** Every heap payload (strings, bytes, containers, storages,
//!   tensors) sits behind a reference count, so a memo reference (`BINGET`) or `DUP` costs one
//!   counter increment whatever the value holds: a "billion laughs" pickle cannot make this
//!   allocate more than it would for the bytes it contains.
//! - **Depth known at every insertion.** Each container records its height (1 + its deepest
//!   child) and whether it has been placed inside another container. A container that is already
//!   inside another is never modified again: Python's pickler only memoizes a container before
//!   filling it and nests it once it is complete, so a later change means a cycle (or a
//!   hand-made pickle) and is refused. Heights are therefore final once nested, depth is checked
//!   in O(1) per insertion, and no cycle can form (the one cycle the rule cannot see, a container
//!   inserted into itself, is refused by identity).

use std::cell::{Cell, Ref, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use super::super::WeightDType;

/// Containers nested deeper than this are refused while parsing (torch state dicts need ~6).
pub const MAX_DEPTH: usize = 64;

/// A storage named by a persistent id: `('storage', torch.FloatStorage, key, location, numel)`.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    pub key: Arc<str>,
    pub dtype: WeightDType,
    /// Element count the pickle claims; the reader checks it against the bytes it finds.
    pub numel: u64,
}

/// A tensor view from `torch._utils._rebuild_tensor_v2`: storage, offset and strides in elements.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    pub storage: Arc<StorageRef>,
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

/// What the stack machine builds. Cloning is always cheap (see the module docs).
#[derive(Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits, as its little-endian two's-complement bytes.
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<Tuple>),
    List(Rc<List>),
    Dict(Rc<Dict>),
    Global(Global),
    Storage(Arc<StorageRef>),
    Tensor(Arc<TensorRef>),
    /// `torch.device('cpu')`: kept as its string.
    Device(Rc<str>),
}

impl Value {
    /// Short type name for error messages (never the contents: they may be huge).
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

    /// Nesting height: 0 for scalars, 1 + the deepest child for containers.
    fn height(&self) -> usize {
        match self {
            Value::Tuple(t) => t.height,
            Value::List(l) => l.shape.height.get(),
            Value::Dict(d) => d.shape.height.get(),
            _ => 0,
        }
    }

    /// Mark a mutable container as placed inside another (see the module docs).
    fn mark_nested(&self) {
        match self {
            Value::List(l) => l.shape.nested.set(true),
            Value::Dict(d) => d.shape.nested.set(true),
            _ => {}
        }
    }
}

/// Height and nesting state of a mutable container.
#[derive(Default)]
struct Shape {
    height: Cell<usize>,
    nested: Cell<bool>,
}

impl Shape {
    fn new() -> Shape {
        Shape { height: Cell::new(1), nested: Cell::new(false) }
    }

    /// May `what` still receive items?
    fn open(&self, what: &str) -> Result<(), String> {
        if self.nested.get() {
            return Err(format!(
                "a {what} is modified after being placed inside another container (a cycle, or not a torch.save pickle)"
            ));
        }
        Ok(())
    }

    /// Account for `child` going inside this container.
    fn take(&self, child: &Value) -> Result<(), String> {
        let h = height_above(std::slice::from_ref(child))?;
        child.mark_nested();
        self.height.set(self.height.get().max(h));
        Ok(())
    }
}

/// 1 + the deepest of `items`, refused past [`MAX_DEPTH`].
fn height_above(items: &[Value]) -> Result<usize, String> {
    let h = 1 + items.iter().map(Value::height).max().unwrap_or(0);
    if h > MAX_DEPTH {
        return Err(format!("containers nested deeper than {MAX_DEPTH}"));
    }
    Ok(h)
}

/// An immutable tuple; complete when created, so its height is final.
pub struct Tuple {
    items: Vec<Value>,
    height: usize,
}

impl Tuple {
    pub(super) fn new(items: Vec<Value>) -> Result<Tuple, String> {
        let height = height_above(&items)?;
        items.iter().for_each(Value::mark_nested);
        Ok(Tuple { items, height })
    }
}

impl std::ops::Deref for Tuple {
    type Target = [Value];
    fn deref(&self) -> &[Value] {
        &self.items
    }
}

/// A list that memo references share.
#[derive(Default)]
pub struct List {
    items: RefCell<Vec<Value>>,
    shape: Shape,
}

impl List {
    pub(super) fn new() -> List {
        List { items: RefCell::new(Vec::new()), shape: Shape::new() }
    }

    /// The items, in order.
    pub fn items(&self) -> Ref<'_, Vec<Value>> {
        self.items.borrow()
    }

    pub(super) fn extend(self: &Rc<Self>, items: Vec<Value>) -> Result<(), String> {
        self.shape.open("list")?;
        for v in &items {
            if matches!(v, Value::List(l) if Rc::ptr_eq(l, self)) {
                return Err("a list is appended to itself (a cycle)".into());
            }
            self.shape.take(v)?;
        }
        self.items.borrow_mut().extend(items);
        Ok(())
    }
}

/// The dict keys that compare by value (the scalar types keys are made of); other keys never
/// match an earlier one.
#[derive(PartialEq, Eq, Hash)]
enum Key {
    Str(Rc<str>),
    Int(i64),
    Bool(bool),
    None,
}

impl Key {
    fn of(v: &Value) -> Option<Key> {
        Some(match v {
            Value::Str(s) => Key::Str(s.clone()),
            Value::Int(i) => Key::Int(*i),
            Value::Bool(b) => Key::Bool(*b),
            Value::None => Key::None,
            _ => return None,
        })
    }
}

/// A dict (an OrderedDict looks the same): entries in insertion order, with a hash index so
/// a repeated key replaces its value in O(1) as Python does.
#[derive(Default)]
pub struct Dict {
    entries: RefCell<Vec<(Value, Value)>>,
    index: RefCell<HashMap<Key, usize>>,
    shape: Shape,
}

impl Dict {
    pub(super) fn new() -> Dict {
        Dict { shape: Shape::new(), ..Default::default() }
    }

    /// The entries, in insertion order.
    pub fn entries(&self) -> Ref<'_, Vec<(Value, Value)>> {
        self.entries.borrow()
    }

    /// The value under string key `key`.
    pub fn get(&self, key: &str) -> Option<Value> {
        let i = *self.index.borrow().get(&Key::Str(Rc::from(key)))?;
        self.entries.borrow().get(i).map(|(_, v)| v.clone())
    }

    /// Insert `(key, value)` pairs; returns how many were new entries (for the budget).
    pub(super) fn set(self: &Rc<Self>, pairs: Vec<(Value, Value)>) -> Result<usize, String> {
        self.shape.open("dict")?;
        let mut added = 0;
        let mut entries = self.entries.borrow_mut();
        let mut index = self.index.borrow_mut();
        for (k, v) in pairs {
            for x in [&k, &v] {
                if matches!(x, Value::Dict(d) if Rc::ptr_eq(d, self)) {
                    return Err("a dict is placed inside itself (a cycle)".into());
                }
                self.shape.take(x)?;
            }
            match Key::of(&k) {
                Some(key) => match index.get(&key) {
                    Some(&i) => entries[i].1 = v,
                    None => {
                        index.insert(key, entries.len());
                        entries.push((k, v));
                        added += 1;
                    }
                },
                None => {
                    entries.push((k, v));
                    added += 1;
                }
            }
        }
        Ok(added)
    }
}

/// Memory the unpickler may allocate: a fixed allowance plus a multiple of the input's size,
/// charged with an estimate (allocator rounding included) for every object, element, memo
/// entry and byte it keeps. A crafted pickle that would need more is refused.
pub struct Budget {
    left: usize,
}

/// Bytes charged per byte of input, and the allowance every pickle gets. The densest real
/// structure, a dict of small int keys written as Python writes it (six bytes an entry), costs
/// about 19 bytes a byte; the worst crafted floods peak near 1.5× their charge while a vector
/// or table reallocates, so a 64 MiB pickle stays under 2 GiB.
pub const BUDGET_PER_BYTE: usize = 20;
pub const BUDGET_BASE: usize = 16 << 20;

/// Estimated costs of what the machine creates.
pub mod cost {
    const VALUE: usize = std::mem::size_of::<super::Value>();
    /// A new list or dict: reference-counted box, cells, empty vectors, allocator rounding.
    pub const CONTAINER: usize = 128;
    /// A list item, with the vector's spare capacity.
    pub const LIST_ITEM: usize = VALUE + VALUE / 2;
    /// A dict entry: the pair, its index slot, and both tables' spare capacity.
    pub const DICT_ENTRY: usize = 2 * VALUE + 64;
    /// A memo entry, with the hash map's spare capacity.
    pub const MEMO: usize = 72;
    /// A heap payload's header (reference counts and rounding) on top of its bytes.
    pub const PAYLOAD: usize = 32;
}

impl Budget {
    /// The budget for a pickle of `len` bytes.
    pub fn for_input(len: usize) -> Budget {
        Budget { left: len.saturating_mul(BUDGET_PER_BYTE).saturating_add(BUDGET_BASE) }
    }

    /// Spend `bytes`, or refuse the pickle.
    pub fn charge(&mut self, bytes: usize) -> Result<(), String> {
        self.left = self.left.checked_sub(bytes).ok_or_else(|| {
            "the pickle builds more objects than its size allows (a decompression bomb?)".to_string()
        })?;
        Ok(())
    }
}
