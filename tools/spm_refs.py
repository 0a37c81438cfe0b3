"""Reference tokenizations for SentencePiece vocabularies in GGUF files (tests/spm_gguf.rs).

llama.cpp stores a SentencePiece BPE vocabulary (Llama, Mistral, TinyLlama) in GGUF as
`tokenizer.ggml.model = "llama"` with the pieces, their scores and their types (normal, unknown,
control, user-defined, unused, byte); encoding it means what SentencePiece itself does with the
model it came from. This script trains a small SentencePiece BPE model the way Llama's was set up
(identity normalization, a dummy prefix space, whitespace kept as it is, digits split, byte
fallback), on part of tinyshakespeare plus a few lines of other scripts, and writes
tests/fixtures/spm_vocab.json: the vocabulary as GGUF would hold it, and per test string the ids
and the decoded text SentencePiece gives. The strings cover whitespace runs, tabs and newlines,
leading and trailing spaces, digits, accents, scripts and emoji the vocabulary lacks (byte
fallback) and the empty string.

Needs the `sentencepiece` wheel (pip download sentencepiece --only-binary=:all:, unzip it and put
it on PYTHONPATH). Run from the repository root: python3 tools/spm_refs.py
"""

import io
import json
import sys

import sentencepiece as spm

CORPUS = "../shared/data/tinyshakespeare.txt"
OUT = "tests/fixtures/spm_vocab.json"
VOCAB = 700

OTHER = [
    "Café naïve façade, déjà vu: Ærøskøbing and Ångström.",
    "Grüße aus Köln! Straße, Größe, Übermaß.",
    "El niño comió piña. ¿Qué tal? ¡Muy bien!",
]

CASES = [
    "Hello world",
    "ROMEO: What, ho! Apothecary!",
    "  two leading spaces",
    "trailing spaces   ",
    "runs    of     spaces",
    "tabs\tand\ttabs\t\tdouble",
    "line one\nline two\n\nafter a blank line\n",
    "In 1597, 42 of 100 copies",
    "naïve café, Ångström",
    "日本語のテキスト",
    "emoji 🙂👍🏽 and ∑ symbols",
    "x=y+1;\r\nreturn x",
    "",
    " ",
    "a",
    "ÆØÅ æøå ß",
    "To be, or not to be, that is the question:",
]

TYPES = {"normal": 1, "unknown": 2, "control": 3, "user_defined": 4, "unused": 5, "byte": 6}


def piece_type(sp, i):
    if sp.is_unknown(i):
        return TYPES["unknown"]
    if sp.is_control(i):
        return TYPES["control"]
    if sp.is_byte(i):
        return TYPES["byte"]
    if sp.is_unused(i):
        return TYPES["unused"]
    return TYPES["normal"]


def main():
    with open(CORPUS, encoding="utf-8") as f:
        text = f.read()[:200_000]
    lines = text.splitlines() + OTHER * 20
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        model_type="bpe",
        vocab_size=VOCAB,
        byte_fallback=True,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        character_coverage=1.0,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    n = sp.get_piece_size()
    vocab = {
        "tokens": [sp.id_to_piece(i) for i in range(n)],
        "scores": [sp.get_score(i) for i in range(n)],
        "token_types": [piece_type(sp, i) for i in range(n)],
        "bos_token_id": sp.bos_id(),
        "eos_token_id": sp.eos_id(),
        "unknown_token_id": sp.unk_id(),
    }
    cases = []
    for s in CASES:
        ids = sp.encode(s)
        cases.append({"text": s, "ids": ids, "decoded": sp.decode(ids)})
    out = {
        "generator": f"tools/spm_refs.py, sentencepiece {spm.__version__}",
        "model": "llama",
        "add_space_prefix": True,
        "vocab": vocab,
        "cases": cases,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    fallback = sum(1 for c in cases for i in c["ids"] if sp.is_byte(i))
    print(f"{OUT}: {n} pieces, {len(cases)} cases, {fallback} byte-fallback ids", file=sys.stderr)


if __name__ == "__main__":
    main()
