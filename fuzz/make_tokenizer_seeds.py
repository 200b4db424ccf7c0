#!/usr/bin/env python3
"""Small tokenizer.json seeds for fuzz_tokenizer_json (fuzz/corpus/tokenizer_json/).

Real tokenizer.json files are 2-30 MB, too large for a fuzzer to mutate usefully. This keeps
each real file's structure (normalizer, pre-tokenizer, decoder, added tokens, model options)
with its vocabulary cut to the 256 byte-level symbols plus the first merges whose parts and
result stay in the vocabulary, and adds a SentencePiece-style (Metaspace, byte fallback) one.

  python3 fuzz/make_tokenizer_seeds.py tests/data/tokenizer/hf fuzz/corpus/tokenizer_json
"""
import json
import pathlib
import sys

src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
for path in sorted(src.glob("*/tokenizer.json")):
    j = json.loads(path.read_text())
    model = j["model"]
    vocab = model["vocab"]
    keep = {t: i for t, i in vocab.items() if len(t) == 1}
    merges = []
    for m in model.get("merges", []):
        a, b = m if isinstance(m, list) else m.split(" ", 1)
        if a in keep and b in keep and len(merges) < 300:
            merges.append(m)
            keep.setdefault(a + b, vocab.get(a + b, len(vocab)))
    ids = sorted(keep.items(), key=lambda kv: kv[1])
    model["vocab"] = {t: n for n, (t, _) in enumerate(ids)}
    model["merges"] = merges
    n = len(ids)
    for k, tok in enumerate(j.get("added_tokens", [])[:24]):
        tok["id"] = n + k
    j["added_tokens"] = j.get("added_tokens", [])[:24]
    (out / f"{path.parent.name}.json").write_text(json.dumps(j, ensure_ascii=False))

# SentencePiece-style BPE (Llama 2, Mixtral): Metaspace, byte fallback, a Replace normalizer.
pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
pieces += ["▁", "e", "t", "h", "▁t", "he", "▁the", "a", "n", "▁a", "▁an", "d", "▁and", "o", "r", "or"]
spm = {
    "version": "1.0",
    "added_tokens": [{"id": i, "content": p, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": True}
                     for i, p in enumerate(pieces[:3])],
    "normalizer": {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "},
                                              "content": "▁"}]},
    "pre_tokenizer": None,
    "decoder": {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ",
                                                     "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "byte_fallback": True,
              "fuse_unk": True, "vocab": {p: i for i, p in enumerate(pieces)},
              "merges": ["▁ t", "h e", "▁t he", "▁ a", "▁a n", "a n", "▁an d", "o r"]},
}
(out / "spm-style.json").write_text(json.dumps(spm, ensure_ascii=False))
