//! The allow-listed globals and what calling them means: each is interpreted here, nothing is
//! imported or executed.

use std::rc::Rc;
use std::sync::Arc;

use super::super::WeightDType;
use super::value::{Dict, Global, StorageRef, TensorRef, Value};

/// Tensor ranks above this are refused (torch itself stops at 64 dims in most kernels; real
/// checkpoints use at most 5).
pub const MAX_RANK: usize = 64;

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

/// The global `module.name`, if it is on the allow-list.
pub fn global(module: &str, name: &str) -> Result<Global, String> {
    Ok(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch", "device") => Global::Device,
        ("torch", s) => match storage_dtype(s) {
            Some(dt) => Global::Storage(dt),
            None => return Err(format!("unsupported pickle global {module}.{name}")),
        },
        _ => {
            // Names are echoed, but a crafted one could be megabytes long.
            let short = |s: &str| s.chars().take(80).collect::<String>();
            return Err(format!("unsupported pickle global {}.{}", short(module), short(name)));
        }
    })
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
    if t.len() > MAX_RANK {
        return Err(format!("{what} has {} dims (at most {MAX_RANK})", t.len()));
    }
    t.iter()
        .map(|d| as_u64(d, what).and_then(|d| usize::try_from(d).map_err(|_| format!("{what} overflows"))))
        .collect()
}

/// Interpret a call to an allow-listed global.
pub fn call(g: Global, args: &[Value]) -> Result<Value, String> {
    match g {
        Global::OrderedDict => {
            if !args.is_empty() {
                return Err("OrderedDict called with arguments".into());
            }
            Ok(Value::Dict(Rc::new(Dict::new())))
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
            Ok(Value::Tensor(Arc::new(TensorRef { storage: storage.clone(), offset, shape, stride })))
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
pub fn persistent(pid: &Value) -> Result<StorageRef, String> {
    let Value::Tuple(t) = pid else {
        return Err(format!("persistent id is a {}, not a tuple", pid.kind()));
    };
    if t.len() < 5 || !matches!(&t[0], Value::Str(s) if &**s == "storage") {
        return Err("persistent id is not a ('storage', type, key, location, numel) tuple".into());
    }
    let Value::Global(Global::Storage(dtype)) = t[1] else {
        return Err(format!("persistent id names a {}, not a torch storage type", t[1].kind()));
    };
    let key: Arc<str> = match &t[2] {
        Value::Str(s) => Arc::from(&**s),
        Value::Int(i) => Arc::from(i.to_string()),
        v => return Err(format!("storage key is a {}", v.kind())),
    };
    if t.len() > 5 && !matches!(t[5], Value::None) {
        return Err(format!("storage '{key}' is a view of another storage (not supported)"));
    }
    let numel = as_u64(&t[4], "storage size")?;
    Ok(StorageRef { key, dtype, numel })
}
