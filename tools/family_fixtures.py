#!/usr/bin/env python3
"""Tiny random-initialised members of the Llama family, and float64 references for them
(tests/fixtures/families/, read by tests/model_families.rs).

Each model is made by transformers from a small config, its weights perturbed so that nothing
is at its initial constant (HF starts biases at 0 and norms at 1, which would hide a missing
bias or a misread norm), saved as a Hugging Face directory (config.json + model.safetensors in
float32), then run in float64 from those float32 values on seeded token ids:

- qwen2_tiny: Qwen2ForCausalLM, q/k/v biases (none on o_proj), tied embeddings, grouped-query
  attention, a sliding window of 4 keys from layer 1 on (use_sliding_window, max_window_layers
  = 1, so layer 0 attends to every earlier key).
- gpt2_tiny_lm (for sequence classification only, below): GPT2LMHeadModel, tied embeddings.
- mistral_tiny: MistralForCausalLM, head_dim 12 with hidden 32 and 4 heads (head_dim is not
  hidden / heads), untied lm_head, a sliding window of 5 keys in every layer.

Sequences run longer than the windows, so the windows change the logits.

qwen2_tiny is also written as llama.cpp's converter writes a Qwen2 GGUF (`qwen2_tiny.gguf`:
architecture `qwen2`, its `qwen2.*` keys, tensor names from the `gguf` package's own name map, q/k
rows not permuted, no sliding window: GGUF has no key for it), with float64 logits of the same
weights without the window (`qwen2_tiny_gguf.INPUT.logits`).

Sequence classification (`seqcls.json`, `seqcls.safetensors`): each model above becomes a
`*ForSequenceClassification` of 3 labels (`qwen2_tiny_cls/`, `mistral_tiny_cls/`, and
`gpt2_tiny_lm_cls/` from gpt2_tiny_lm: the same decoder, a seeded `score`, no lm_head), run in
float64 on a right-padded batch of seeded lengths; logits, the cross-entropy loss of seeded
labels, and gradients. The pad id is `pad_token_id` of the saved config and no real token uses
it, so transformers' last-non-pad rule (it is given no mask) and whet's mask (stored beside the
ids) agree.

Run with the torch environment, from the repository root:

    python tools/family_fixtures.py        # writes tests/fixtures/families/
"""

import json
import shutil
from pathlib import Path

import numpy as np
import torch
import transformers
from safetensors.numpy import save_file
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
    DistilBertConfig,
    GPT2Config,
    MistralConfig,
    Qwen2Config,
    RobertaConfig,
    ViTConfig,
)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests/fixtures/families"

COMMON = dict(
    vocab_size=96,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    rms_norm_eps=1e-6,
    initializer_range=0.1,
)

MODELS = {
    "qwen2_tiny": lambda: Qwen2Config(
        **COMMON,
        rope_theta=1e6,
        tie_word_embeddings=True,
        use_sliding_window=True,
        sliding_window=4,
        max_window_layers=1,
    ),
    "mistral_tiny": lambda: MistralConfig(
        **COMMON, head_dim=12, rope_theta=1e4, tie_word_embeddings=False, sliding_window=5
    ),
}

# (name, batch, seq): every one longer than the windows.
INPUTS = [("b2_t9", 2, 9), ("b1_t13", 1, 13), ("b3_t6", 3, 6)]

# The gradients checked: embeddings, a bias, projections of both layers, norms, the head.
GRADS = [
    "model.embed_tokens.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.1.self_attn.k_proj.weight",
    "model.layers.1.self_attn.v_proj.weight",
    "model.layers.1.self_attn.o_proj.weight",
    "model.layers.0.mlp.down_proj.weight",
    "model.layers.1.input_layernorm.weight",
    "model.norm.weight",
    "lm_head.weight",
]
BIAS_GRADS = ["model.layers.0.self_attn.q_proj.bias", "model.layers.1.self_attn.v_proj.bias"]

# Sequence classification: labels, the pad id, (batch, seq) of the padded batch.
CLS_LABELS, CLS_PAD, CLS_BATCH, CLS_SEQ = 3, 0, 4, 11
CLS_GRADS = [
    "score.weight",
    "model.norm.weight",
    "model.layers.1.self_attn.q_proj.weight",
    "model.layers.0.mlp.up_proj.weight",
    "model.embed_tokens.weight",
]
GPT2_CLS_GRADS = [
    "score.weight",
    "transformer.ln_f.weight",
    "transformer.h.1.attn.c_attn.weight",
    "transformer.h.0.mlp.c_fc.bias",
    "transformer.wte.weight",
    "transformer.wpe.weight",
]


def f32(t):
    return np.ascontiguousarray(t.detach().numpy().astype(np.float32))


def write_fixture(stem, tensors, fields):
    """`stem.safetensors` and `stem.json` (`fields` between the versions and how it was computed)."""
    save_file(tensors, str(OUT / f"{stem}.safetensors"))
    meta = {
        "generated_by": "tools/family_fixtures.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        **fields,
        "computed_in": "float64 from the float32 weights saved (eager attention, dropout off), stored as float32",
    }
    (OUT / f"{stem}.json").write_text(json.dumps(meta, indent=1) + "\n")


def record_batch(tensors, name, batch, out, params, grads):
    """A classifier's padded batch (ids, mask, labels), its logits, loss and `grads`."""
    for k, v in zip(["input_ids", "attention_mask", "labels"], batch):
        tensors[f"{name}.{k}"] = v
    tensors[f"{name}.logits"] = f32(out.logits)
    tensors[f"{name}.loss"] = f32(out.loss.reshape(1))
    for k in grads:
        tensors[f"{name}.grad.{k}"] = f32(params[k].grad)


def perturbed(config, seed):
    """A float32 model whose every parameter differs from its initial constant (GPT-2's
    LayerNorms are `ln_*`)."""
    torch.manual_seed(seed)
    m = AutoModelForCausalLM.from_config(config, attn_implementation="eager").float()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("norm.weight") or (".ln_" in name and name.endswith(".weight")):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return m.eval()


def write_qwen2_gguf(hf_dir, path):
    """The HF directory as convert_hf_to_gguf.py writes a Qwen2 model (float32 tensors)."""
    import gguf
    from safetensors.numpy import load_file

    cfg = json.loads((hf_dir / "config.json").read_text())
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2, cfg["num_hidden_layers"])
    w = gguf.GGUFWriter(str(path), "qwen2")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_freq_base(cfg["rope_parameters"]["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    for name, t in sorted(load_file(str(hf_dir / "model.safetensors")).items()):
        base, suffix = name.rsplit(".", 1)
        w.add_tensor(f"{names.get_name(base)}.{suffix}", np.ascontiguousarray(t, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def without_window(hf_dir):
    """The HF model in float64 with every layer attending to all earlier keys."""
    cfg = AutoConfig.from_pretrained(str(hf_dir))
    cfg.use_sliding_window, cfg.sliding_window = False, None
    cfg.layer_types = ["full_attention"] * cfg.num_hidden_layers
    m = AutoModelForCausalLM.from_pretrained(
        str(hf_dir), config=cfg, dtype=torch.float64, attn_implementation="eager"
    ).eval()
    assert all(getattr(l.self_attn, "sliding_window", None) is None for l in m.model.layers)
    return m


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    rng = np.random.default_rng(29)
    tensors, models = {}, {}
    for i, (name, make) in enumerate(MODELS.items()):
        m32 = perturbed(make(), 100 + i)
        m32.save_pretrained(str(OUT / name), safe_serialization=True)
        for extra in ["generation_config.json"]:
            (OUT / name / extra).unlink(missing_ok=True)
        m = AutoModelForCausalLM.from_pretrained(
            str(OUT / name), dtype=torch.float64, attn_implementation="eager"
        ).eval()
        params = dict(m.named_parameters())
        if m.config.tie_word_embeddings:
            params["lm_head.weight"] = m.get_output_embeddings().weight
        grads = [k for k in GRADS + BIAS_GRADS if k in params]
        windows = [getattr(layer.self_attn, "sliding_window", None) for layer in m.model.layers]
        inputs = []
        for iname, b, t in INPUTS:
            ids = torch.from_numpy(rng.integers(0, m.config.vocab_size, size=(b, t), dtype=np.int64))
            m.zero_grad()
            out = m(input_ids=ids, labels=ids)  # HF causal-LM loss: logits[:, :-1] vs ids[:, 1:]
            out.loss.backward()
            key = f"{name}.{iname}"
            tensors[f"{key}.input_ids"] = ids.numpy()
            tensors[f"{key}.logits"] = f32(out.logits)
            tensors[f"{key}.loss"] = f32(out.loss.reshape(1))
            for k in grads:
                tensors[f"{key}.grad.{k}"] = f32(params[k].grad)
            inputs.append({"name": iname, "batch": b, "seq": t})
            print(f"{key}: loss {out.loss.item():.6f}")
        models[name] = {
            "weights": f"families/{name}/",
            "model": type(m).__name__,
            "windows_per_layer": windows,
            "tied_embeddings": bool(m.config.tie_word_embeddings),
            "inputs": inputs,
            "grads": grads,
        }
    gguf_path = OUT / "qwen2_tiny.gguf"
    write_qwen2_gguf(OUT / "qwen2_tiny", gguf_path)
    plain = without_window(OUT / "qwen2_tiny")
    gguf_inputs = []
    for i in models["qwen2_tiny"]["inputs"]:
        ids = torch.from_numpy(tensors[f"qwen2_tiny.{i['name']}.input_ids"])
        with torch.no_grad():
            tensors[f"qwen2_tiny_gguf.{i['name']}.logits"] = f32(plain(input_ids=ids).logits)
        gguf_inputs.append(i["name"])
    gguf_case = {"file": gguf_path.name, "weights_of": "qwen2_tiny", "inputs": gguf_inputs}
    save_file(tensors, str(OUT / "families.safetensors"))
    meta = {
        "generated_by": "tools/family_fixtures.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "numpy": np.__version__},
        "models": models,
        "gguf": gguf_case,
        "per_input": {
            "MODEL.INPUT.input_ids": "(batch, seq) int64, uniform over the vocabulary (numpy default_rng(29))",
            "MODEL.INPUT.logits": "(batch, seq, vocab)",
            "MODEL.INPUT.loss": "(1,) HF causal-LM loss, logits[:, :-1] vs ids[:, 1:], mean",
            "MODEL.INPUT.grad.NAME": "gradient of the loss w.r.t. the parameter NAME (HF names; "
            "lm_head.weight of a tied model is the embedding's)",
            "qwen2_tiny_gguf.INPUT.logits": "qwen2_tiny's weights without its sliding window, on qwen2_tiny.INPUT.input_ids",
        },
        "computed_in": "float64 from the float32 weights saved (eager attention, dropout off), stored as float32",
    }
    (OUT / "families.json").write_text(json.dumps(meta, indent=1) + "\n")
    write_gpt2_lm("gpt2_tiny_lm", 200)
    write_seqcls(list(MODELS) + ["gpt2_tiny_lm"], rng)
    write_encoders(rng)
    write_vit(rng)


# ViT: (name, image height, width); 32 × 32 is the checkpoint's size, the others interpolate
# the position embeddings (a larger square grid, and a non-square one).
VIT_INPUTS = [("s32", 32, 32), ("s48", 48, 48), ("h40w24", 40, 24)]
VIT_GRADS = [
    "classifier.weight",
    "vit.layernorm.weight",
    "vit.encoder.layer.1.attention.attention.query.weight",
    "vit.encoder.layer.0.layernorm_before.weight",
    "vit.embeddings.patch_embeddings.projection.weight",
    "vit.embeddings.cls_token",
    "vit.embeddings.position_embeddings",
]


def write_vit(rng):
    """A tiny ViTForImageClassification on random images at three sizes."""
    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=48, initializer_range=0.1, num_labels=3,
    )
    torch.manual_seed(500)
    m32 = AutoModelForImageClassification.from_config(config, attn_implementation="eager").float()
    g = torch.Generator().manual_seed(501)
    with torch.no_grad():
        for pname, p in m32.named_parameters():
            if "layernorm" in pname and pname.endswith(".weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif pname.endswith(".bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    name = "vit_tiny_cls"
    m32.save_pretrained(str(OUT / name), safe_serialization=True)
    m = AutoModelForImageClassification.from_pretrained(
        str(OUT / name), dtype=torch.float64, attn_implementation="eager"
    ).eval()
    # transformers 5 names ViT's modules its own way inside (vit.layers.0.attention.q_proj) and
    # writes the checkpoint names users have (vit.encoder.layer.0.attention.attention.query):
    # each checkpoint name is matched to its parameter by value.
    from safetensors.numpy import load_file

    saved = load_file(str(OUT / name / "model.safetensors"))
    inner = dict(m.named_parameters())
    params = {}
    for k in VIT_GRADS:
        hits = [n for n, p in inner.items() if p.shape == saved[k].shape
                and np.array_equal(p.detach().numpy().astype(np.float32), saved[k])]
        assert len(hits) == 1, (k, hits)
        params[k] = inner[hits[0]]
    tensors, inputs = {}, []
    for iname, h, w in VIT_INPUTS:
        pixels = rng.standard_normal((2, 3, h, w))
        labels = rng.integers(0, 3, size=2, dtype=np.int64)
        m.zero_grad()
        out = m(
            pixel_values=torch.from_numpy(pixels),
            labels=torch.from_numpy(labels),
            interpolate_pos_encoding=(h, w) != (32, 32),
        )
        out.loss.backward()
        key = f"{name}.{iname}"
        tensors[f"{key}.pixels"] = pixels.astype(np.float32)
        tensors[f"{key}.labels"] = labels
        tensors[f"{key}.logits"] = f32(out.logits)
        tensors[f"{key}.loss"] = f32(out.loss.reshape(1))
        for k in VIT_GRADS:
            tensors[f"{key}.grad.{k}"] = f32(params[k].grad)
        inputs.append({"name": iname, "height": h, "width": w})
        print(f"{key}: loss {out.loss.item():.6f}")
    write_fixture(
        "vit",
        tensors,
        {
        "model": name,
        "weights": f"families/{name}/",
        "inputs": inputs,
        "grads": VIT_GRADS,
        "per_input": {
            "M.I.pixels": "(2, 3, H, W) float32 standard normal (the model's input as it is)",
            "M.I.labels": "(2,) int64",
            "M.I.logits": "(2, 3); sizes other than config.image_size with interpolate_pos_encoding",
            "M.I.loss": "(1,) cross-entropy, mean",
            "M.I.grad.P": "gradient of the loss w.r.t. the parameter P",
        },
        },
    )


# The encoders: (name, config, pad id). Positions of RoBERTa start past its pad id.
ENCODERS = [
    (
        "roberta_tiny_cls",
        lambda: RobertaConfig(
            vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=48, max_position_embeddings=40, type_vocab_size=1,
            initializer_range=0.1, pad_token_id=1, num_labels=3,
        ),
        1,
    ),
    (
        "distilbert_tiny_cls",
        lambda: DistilBertConfig(
            vocab_size=96, dim=32, n_layers=2, n_heads=4, hidden_dim=48,
            max_position_embeddings=40, initializer_range=0.1, pad_token_id=0, num_labels=3,
        ),
        0,
    ),
]
ENC_GRADS = {
    "roberta_tiny_cls": [
        "classifier.out_proj.weight",
        "classifier.dense.weight",
        "roberta.encoder.layer.1.attention.self.query.weight",
        "roberta.encoder.layer.0.output.LayerNorm.weight",
        "roberta.embeddings.word_embeddings.weight",
        "roberta.embeddings.position_embeddings.weight",
    ],
    "distilbert_tiny_cls": [
        "classifier.weight",
        "pre_classifier.weight",
        "distilbert.transformer.layer.1.attention.q_lin.weight",
        "distilbert.transformer.layer.0.sa_layer_norm.weight",
        "distilbert.transformer.layer.0.ffn.lin1.bias",
        "distilbert.embeddings.word_embeddings.weight",
        "distilbert.embeddings.position_embeddings.weight",
    ],
}


def write_encoders(rng):
    """RoBERTa and DistilBERT sequence classifiers on a right-padded batch with its mask."""
    tensors, models = {}, {}
    for i, (name, make, pad) in enumerate(ENCODERS):
        torch.manual_seed(400 + i)
        m32 = AutoModelForSequenceClassification.from_config(make(), attn_implementation="eager").float()
        g = torch.Generator().manual_seed(401 + i)
        with torch.no_grad():
            for pname, p in m32.named_parameters():
                if pname.lower().endswith("norm.weight"):
                    p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
                elif pname.endswith(".bias"):
                    p.copy_(0.3 * torch.randn(p.shape, generator=g))
        m32.save_pretrained(str(OUT / name), safe_serialization=True)
        m = AutoModelForSequenceClassification.from_pretrained(
            str(OUT / name), dtype=torch.float64, attn_implementation="eager"
        ).eval()
        lengths = rng.integers(2, CLS_SEQ + 1, size=CLS_BATCH)
        lengths[0] = CLS_SEQ
        mask = (np.arange(CLS_SEQ)[None, :] < lengths[:, None]).astype(np.int64)
        ids = rng.integers(3, m.config.vocab_size, size=(CLS_BATCH, CLS_SEQ), dtype=np.int64)
        ids = np.where(mask == 1, ids, pad)
        labels = rng.integers(0, CLS_LABELS, size=CLS_BATCH, dtype=np.int64)
        m.zero_grad()
        out = m(
            input_ids=torch.from_numpy(ids),
            attention_mask=torch.from_numpy(mask),
            labels=torch.from_numpy(labels),
        )
        out.loss.backward()
        record_batch(tensors, name, (ids, mask, labels), out, dict(m.named_parameters()), ENC_GRADS[name])
        models[name] = {"weights": f"families/{name}/", "model": type(m).__name__, "grads": ENC_GRADS[name]}
        print(f"{name}: lengths {lengths.tolist()}, loss {out.loss.item():.6f}")
    write_fixture(
        "encoders",
        tensors,
        {
        "models": models,
        "per_model": {
            "NAME.input_ids": "(batch, seq) int64, right-padded with config.pad_token_id",
            "NAME.attention_mask": "(batch, seq) int64, 1 for real tokens (given to the model)",
            "NAME.labels": "(batch,) int64",
            "NAME.logits": "(batch, num_labels)",
            "NAME.loss": "(1,) cross-entropy of the logits and labels, mean",
            "NAME.grad.P": "gradient of the loss w.r.t. the parameter P",
        },
        },
    )


def write_gpt2_lm(name, seed):
    """A tiny perturbed GPT2LMHeadModel directory (the source of gpt2_tiny_lm_cls)."""
    config = GPT2Config(vocab_size=96, n_embd=32, n_layer=2, n_head=4, n_positions=64, initializer_range=0.1)
    perturbed(config, seed).save_pretrained(str(OUT / name), safe_serialization=True)
    (OUT / name / "generation_config.json").unlink(missing_ok=True)


def write_seqcls(names, rng):
    """`*ForSequenceClassification` of each family model, on a right-padded batch."""
    tensors, models = {}, {}
    for i, name in enumerate(names):
        torch.manual_seed(300 + i)
        m32 = AutoModelForSequenceClassification.from_pretrained(
            str(OUT / name), num_labels=CLS_LABELS, pad_token_id=CLS_PAD, dtype=torch.float32
        )
        cls_name = f"{name}_cls"
        m32.save_pretrained(str(OUT / cls_name), safe_serialization=True)
        (OUT / cls_name / "generation_config.json").unlink(missing_ok=True)
        m = AutoModelForSequenceClassification.from_pretrained(
            str(OUT / cls_name), dtype=torch.float64, attn_implementation="eager"
        ).eval()
        lengths = rng.integers(2, CLS_SEQ + 1, size=CLS_BATCH)
        lengths[0] = CLS_SEQ  # one row fills the batch, so padding is never all there is
        mask = (np.arange(CLS_SEQ)[None, :] < lengths[:, None]).astype(np.int64)
        ids = rng.integers(1, m.config.vocab_size, size=(CLS_BATCH, CLS_SEQ), dtype=np.int64)
        ids = np.where(mask == 1, ids, CLS_PAD)
        labels = rng.integers(0, CLS_LABELS, size=CLS_BATCH, dtype=np.int64)
        m.zero_grad()
        # No attention mask: with right padding a causal model's real tokens never see a pad,
        # and transformers finds each row's last real token from pad_token_id. (With the mask,
        # eager attention turns a pad query whose whole window is padding into NaN, which
        # then reaches the real tokens of the next layer through 0 × NaN.)
        out = m(input_ids=torch.from_numpy(ids), labels=torch.from_numpy(labels))
        out.loss.backward()
        grads = GPT2_CLS_GRADS if name.startswith("gpt2") else CLS_GRADS
        record_batch(tensors, cls_name, (ids, mask, labels), out, dict(m.named_parameters()), grads)
        models[cls_name] = {
            "weights": f"families/{cls_name}/",
            "model": type(m).__name__,
            "decoder_of": name,
            "grads": grads,
        }
        print(f"{cls_name}: lengths {lengths.tolist()}, loss {out.loss.item():.6f}")
    write_fixture(
        "seqcls",
        tensors,
        {
        "models": models,
        "per_model": {
            "NAME.input_ids": "(batch, seq) int64, right-padded with config.pad_token_id",
            "NAME.attention_mask": "(batch, seq) int64, 1 for real tokens",
            "NAME.labels": "(batch,) int64",
            "NAME.logits": "(batch, num_labels) at each row's last real token",
            "NAME.loss": "(1,) cross-entropy of the logits and labels, mean",
            "NAME.grad.P": "gradient of the loss w.r.t. the parameter P",
        },
        },
    )


if __name__ == "__main__":
    main()
