#!/usr/bin/python3
"""Regenerates the SentencePiece fixture used by tests/tokenizer/test_sentencepiece.cpp.

    /usr/bin/python3 tests/data/tokenizer/make_sp_fixture.py [MODEL_DIR] [CORPUS_DIR]

Copies MODEL_DIR/tokenizer.model (default ../shared/models/mixtral-tiny) to
mixtral-tiny/tokenizer.model here and writes mixtral-tiny.inp / mixtral-tiny.out in
llama.cpp's test-tokenizer-0 layout: inputs separated by "\\n__ggml_vocab_test__\\n", and
the ids python sentencepiece gives each input (SentencePieceProcessor.encode, no BOS/EOS),
one line per input. Inputs: edge cases (whitespace, NFKC-affected characters, controls,
malformed UTF-8, emoji) plus deterministic samples of every corpus file, single lines and
multi-line chunks, English and Russian.
"""
import os
import shutil
import sys

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
MODEL_DIR = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "models", "mixtral-tiny")
CORPUS_DIR = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "..", "shared", "corpus")
SEP = b"\n__ggml_vocab_test__\n"
MAX_CHARS = 600  # keeps the fixture small; long inputs are covered by the corpus check

EDGE = [
    "", " ", "  ", "   ", "\t", "\n", "\n\n", "\t\n", " \n ", "\r\n",
    "Hello", " Hello", "  Hello", "Hello ", "Hello   world", "  Hello  world  ", "Hello\tworld", "a\r\nb",
    "Hello, world!", "Once upon a time, the prince said", "w048 7tuijk dsdfhu", "3333333333",
    "ﬁ ﬂ ① ² ½ Ｈｅｌｌｏ ＡＢＣ １２３", "café café", "e\u0301 a\u0308", "\u00a0x\u00a0y\u00a0", "\u3000全角\u3000空白",
    "emoji 😀🦙 mixed 🚀 (normal) 😶\u200d🌫️", "日本語のテキスト", "Ελληνικά κείμενο", "العربية", "עברית",
    "x\u200by\u200cz", "a\x00b", "\x01\x02x\x7f", "▁already▁escaped ▁", "<s> and </s> and <unk>", "<0x41> <0x0A>",
    "a" * 300, "🦙" * 5, "\ufeffBOM", "Ω Å K ℃ ℉", "ﾊﾝｶｸ ｶﾀｶﾅ", "… — ‘quotes’ “double” «ёлки»",
    "Ёжик в тумане: «Привет, мир!»", "  Русский  текст  с   пробелами  ", "ⅰⅱⅲ Ⅳ ㈱ ㎏ ㍻", "\u2028line\u2029para",
    "tab\there\tand\tthere", "trailing spaces   ", "   leading spaces", "mixed\u3000ideographic space",
    "1,234.56 $7 €8 £9 ¥10", "C++ int main() { return 0; }", "http://example.com/path?q=1&r=2",
]
MALFORMED = [b"ab\xffcd", b"\xc3(", b"\xe2\x82", b"x\xf0\x9f\x98", b"\x80\x80 lone continuation", b"\xed\xa0\x80 surrogate"]


def corpus_inputs():
    out = []
    for name in sorted(os.listdir(CORPUS_DIR)):
        if not name.endswith(".txt"):
            continue
        with open(os.path.join(CORPUS_DIR, name), "rb") as f:
            text = f.read().decode("utf-8")
        lines = text.split("\n")
        nonempty = [l for l in lines if l.strip()]
        step = max(1, len(nonempty) // 40)
        out += [l[:MAX_CHARS] for l in nonempty[::step][:40]]
        step = max(1, len(lines) // 8)
        for i in range(0, len(lines) - 3, step)[:8]:
            out.append("\n".join(lines[i:i + 3])[:MAX_CHARS])
    return out


def main():
    src = os.path.join(MODEL_DIR, "tokenizer.model")
    dst_dir = os.path.join(HERE, "mixtral-tiny")
    os.makedirs(dst_dir, exist_ok=True)
    shutil.copyfile(src, os.path.join(dst_dir, "tokenizer.model"))
    sp = spm.SentencePieceProcessor(model_file=src)
    inputs = [s.encode("utf-8") for s in EDGE + corpus_inputs()] + MALFORMED
    inputs = [s for s in inputs if SEP not in s and b"__ggml_vocab_test__" not in s]
    with open(os.path.join(HERE, "mixtral-tiny.inp"), "wb") as f:
        for s in inputs:
            f.write(s + SEP)
    n = 0
    with open(os.path.join(HERE, "mixtral-tiny.out"), "w") as f:
        for s in inputs:
            ids = sp.encode(s)
            n += len(ids)
            f.write(" " + " ".join(map(str, ids)) + "\n")
    print(f"{len(inputs)} inputs, {n} tokens")


if __name__ == "__main__":
    main()
