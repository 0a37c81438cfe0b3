//! Registry of every WGSL file: one const per file, and `ALL` for the validation test.
//!
//! Each file is compiled as `prelude.wgsl` + the file, so shared helpers (folded 1-D indices,
//! a NaN-safe tanh, erf) are written once. `specs` lists every (entry point, override
//! constants) pair the crate dispatches, so `tests/shaders.rs` can validate each specialisation
//! with naga on a machine without a GPU.

/// One WGSL source file and the specialisations the crate uses.
#[derive(Debug)]
pub struct ShaderFile {
    /// Path under `shaders/` without the extension, e.g. `elementwise/unary`.
    pub name: &'static str,
    /// The file's text (without the prelude).
    pub source: &'static str,
    /// Every entry point with every set of override constants the crate dispatches.
    pub specs: &'static [Spec],
    /// The file is written over `act`, the activations' element type, and is also compiled
    /// with `act = f16` (`Kernel::half`) on adapters with `SHADER_F16`.
    pub halves: bool,
}

/// Specialisations of one entry point: the cartesian product of the listed values of each
/// pipeline-overridable constant (an empty list means the entry has no overrides).
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub entry: &'static str,
    pub overrides: &'static [(&'static str, &'static [f64])],
}

impl Spec {
    /// Every concrete set of constants this spec stands for.
    pub fn expand(&self) -> Vec<Vec<(&'static str, f64)>> {
        let mut out: Vec<Vec<(&'static str, f64)>> = vec![vec![]];
        for (name, values) in self.overrides {
            out = out
                .into_iter()
                .flat_map(|prefix| {
                    values.iter().map(move |v| {
                        let mut p = prefix.clone();
                        p.push((*name, *v));
                        p
                    })
                })
                .collect();
        }
        out
    }
}

const fn plain(entry: &'static str) -> Spec {
    Spec { entry, overrides: &[] }
}

/// Shared helpers prepended to every shader.
pub const PRELUDE: &str = include_str!("../../shaders/common/prelude.wgsl");

/// Declares `act`, the element type of activations: f32, or f16 in a file's half variant
/// (WGSL has no generics; a type alias ahead of the prelude stands in for one).
fn act_header(half: bool) -> &'static str {
    if half {
        "enable f16;\nalias act = f16;\n"
    } else {
        "alias act = f32;\n"
    }
}

impl ShaderFile {
    /// The text that is compiled: the `act` declaration, the prelude, then the file.
    pub fn full_source(&self) -> String {
        self.source_for(false)
    }

    /// The text of the f32 (`half = false`) or f16 variant.
    pub fn source_for(&self, half: bool) -> String {
        format!("{}{PRELUDE}\n{}", act_header(half), self.source)
    }
}

macro_rules! shader {
    ($const_name:ident, $path:literal, [$($spec:expr),* $(,)?]) => {
        shader!(@file $const_name, $path, false, "", [$($spec),*]);
    };
    ($const_name:ident, $path:literal, halves, [$($spec:expr),* $(,)?]) => {
        shader!(@file $const_name, $path, true, ", also compiled with f16 activations", [$($spec),*]);
    };
    (@file $const_name:ident, $path:literal, $halves:literal, $note:literal, [$($spec:expr),*]) => {
        #[doc = concat!("`shaders/", $path, ".wgsl`", $note)]
        pub const $const_name: ShaderFile = ShaderFile {
            name: $path,
            source: include_str!(concat!("../../shaders/", $path, ".wgsl")),
            specs: &[$($spec),*],
            halves: $halves,
        };
    };
}

/// Op codes of `elementwise/unary.wgsl` (see `ops::elementwise::UnaryOp`).
const UNARY_OPS: &[f64] = &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0];
/// Op codes of `elementwise/binary.wgsl`: add, sub, mul, div.
const BINARY_OPS: &[f64] = &[0.0, 1.0, 2.0, 3.0];

shader!(
    UNARY,
    "elementwise/unary",
    halves,
    [
        Spec { entry: "unary_forward", overrides: &[("OP", UNARY_OPS)] },
        Spec { entry: "unary_backward", overrides: &[("OP", UNARY_OPS)] },
    ]
);
shader!(
    BINARY,
    "elementwise/binary",
    halves,
    [
        Spec { entry: "binary_same", overrides: &[("OP", BINARY_OPS)] },
        Spec { entry: "binary_tail", overrides: &[("OP", BINARY_OPS)] },
        Spec { entry: "binary_rows4", overrides: &[("OP", BINARY_OPS)] },
        Spec { entry: "binary_broadcast", overrides: &[("OP", BINARY_OPS)] },
        Spec { entry: "binary_backward", overrides: &[("OP", &[2.0, 3.0])] },
    ]
);
shader!(CAST, "elementwise/cast", halves, [plain("cast_to_act"), plain("cast_from_act")]);
shader!(FILL, "elementwise/fill", halves, [plain("fill"), plain("copy"), plain("fill_u32")]);
shader!(MATMUL_BLOCKED, "matmul/matmul_blocked", [plain("matmul_blocked")]);
shader!(
    MATMUL_SUBGROUP,
    "matmul/matmul_subgroup",
    [
        plain("matmul_sg64_nn"),
        plain("matmul_sg64_nt"),
        plain("matmul_sg64_tn"),
        plain("matmul_sg16_nn"),
        plain("matmul_sg16_nt"),
        plain("matmul_sg16_tn")
    ]
);
shader!(MATMUL_TILED, "matmul/matmul_tiled", halves, [plain("matmul_tiled")]);
shader!(
    MATMUL_GENERIC,
    "matmul/matmul_generic",
    halves,
    [Spec { entry: "matmul_generic", overrides: &[("TRANS_A", &[0.0, 1.0]), ("TRANS_B", &[0.0, 1.0])] },]
);
shader!(
    REDUCE,
    "reduce/reduce",
    [
        plain("sum_rows"),
        plain("max_rows"),
        plain("sum_wide"),
        plain("max_wide"),
        plain("expand_backward"),
        plain("max_backward"),
    ]
);
shader!(
    SOFTMAX,
    "softmax/softmax",
    [
        Spec { entry: "softmax_forward", overrides: &[("LOG", &[0.0, 1.0])] },
        Spec { entry: "softmax_backward", overrides: &[("LOG", &[0.0, 1.0])] },
    ]
);
shader!(
    LAYER_NORM,
    "norm/layer_norm",
    halves,
    [plain("layer_norm_forward"), plain("layer_norm_backward_input"), plain("layer_norm_backward_params"),]
);
shader!(
    RMS_NORM,
    "norm/rms_norm",
    halves,
    [plain("rms_norm_forward"), plain("rms_norm_backward_input"), plain("rms_norm_backward_weight"),]
);
shader!(
    EMBEDDING,
    "embedding/embedding",
    [plain("embedding_forward"), plain("embedding_forward4"), plain("embedding_backward")]
);
shader!(
    CROSS_ENTROPY,
    "loss/cross_entropy",
    halves,
    [plain("cross_entropy_forward"), plain("cross_entropy_backward")]
);
shader!(MSE, "loss/mse", [plain("mse_forward"), plain("mse_backward")]);
shader!(PERMUTE, "layout/permute", halves, [plain("permute"), plain("permute_rows4")]);
shader!(AXIS_COPY, "layout/axis_copy", halves, [plain("axis_read"), plain("axis_write")]);
shader!(DROPOUT, "dropout/dropout", halves, [plain("dropout_forward"), plain("dropout_backward")]);
shader!(ADAMW, "optim/adamw", [plain("adamw_step")]);
shader!(SGD, "optim/sgd", [plain("sgd_step")]);
shader!(ARENA, "optim/arena", [plain("sumsq_partial"), plain("clip_scale"), plain("accumulate")]);
shader!(NONFINITE, "check/nonfinite", [plain("count_nonfinite")]);
shader!(
    CONV,
    "conv/conv",
    [
        plain("im2col"),
        plain("im2col_t"),
        plain("col2im"),
        plain("tmp_to_out"),
        plain("out_to_tmp"),
        plain("pad_weight"),
        plain("store_weight_grad"),
        plain("add_bias"),
        plain("bias_grad"),
        plain("depthwise_forward"),
        plain("depthwise_grad_input"),
        plain("depthwise_grad_weight"),
    ]
);
shader!(
    POOL,
    "pool/pool",
    [
        plain("max_pool_forward"),
        plain("max_pool_backward"),
        plain("avg_pool_forward"),
        plain("avg_pool_backward"),
        plain("adaptive_avg_forward"),
        plain("adaptive_avg_backward"),
    ]
);
shader!(
    BATCH_NORM,
    "norm/batch_norm",
    [
        plain("bn_stats"),
        plain("bn_eval_stats"),
        plain("bn_apply"),
        plain("bn_backward_reduce"),
        plain("bn_backward_input"),
    ]
);
shader!(
    ATTENTION,
    "attention/attention",
    halves,
    [plain("attn_softmax_forward"), plain("attn_softmax_backward")]
);
shader!(ROPE, "attention/rope", halves, [plain("rope_apply")]);
shader!(
    FLASH,
    "attention/flash",
    halves,
    [
        plain("flash_forward"),
        plain("flash_backward_stats"),
        plain("flash_backward_q"),
        plain("flash_backward_kv")
    ]
);
/// Block formats of `quant/quant.wgsl` (`QTYPE`): Q4_0, Q4_1, Q8_0, Q4_K (see `tensor::quant`).
const QTYPES: &[(&str, &[f64])] = &[("QTYPE", &[0.0, 1.0, 2.0, 3.0])];
shader!(
    QUANT,
    "quant/quant",
    halves,
    [
        Spec { entry: "qmatmul_nt", overrides: QTYPES },
        Spec { entry: "qmatmul_nn", overrides: QTYPES },
        Spec { entry: "qmatmul_nn_any", overrides: QTYPES },
        Spec { entry: "qembedding", overrides: QTYPES },
        Spec { entry: "dequantize", overrides: QTYPES },
    ]
);

/// Every shader file the crate ships.
pub const ALL: &[&ShaderFile] = &[
    &UNARY,
    &BINARY,
    &CAST,
    &FILL,
    &MATMUL_BLOCKED,
    &MATMUL_SUBGROUP,
    &MATMUL_TILED,
    &MATMUL_GENERIC,
    &REDUCE,
    &SOFTMAX,
    &LAYER_NORM,
    &RMS_NORM,
    &EMBEDDING,
    &CROSS_ENTROPY,
    &MSE,
    &PERMUTE,
    &AXIS_COPY,
    &DROPOUT,
    &ADAMW,
    &SGD,
    &ARENA,
    &NONFINITE,
    &CONV,
    &POOL,
    &BATCH_NORM,
    &ATTENTION,
    &ROPE,
    &FLASH,
    &QUANT,
];

/// Parse and validate one specialisation with naga; the error text is naga's own.
pub fn validate(file: &ShaderFile, constants: &[(&str, f64)]) -> Result<(), String> {
    validate_variant(file, false, constants)
}

/// [`validate`] for the f32 (`half = false`) or f16 variant of a file.
pub fn validate_variant(file: &ShaderFile, half: bool, constants: &[(&str, f64)]) -> Result<(), String> {
    let src = file.source_for(half);
    let module = naga::front::wgsl::parse_str(&src).map_err(|e| e.emit_to_string(&src))?;
    let mut validator =
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all());
    let info = validator.validate(&module).map_err(|e| e.emit_to_string(&src))?;
    if constants.is_empty() {
        return Ok(());
    }
    let map: naga::back::PipelineConstants = constants.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let (module, _info) = naga::back::pipeline_constants::process_overrides(&module, &info, None, &map)
        .map_err(|e| format!("{e}"))?;
    let mut validator =
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all());
    validator.validate(&module).map_err(|e| e.emit_to_string(&src))?;
    Ok(())
}
