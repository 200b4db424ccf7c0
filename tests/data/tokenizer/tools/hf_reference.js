// Makes the expected data of tests/tokenizer/test_families.cpp with Hugging Face's own
// tokenizers library (the Rust crate, through the napi-rs build published on npm as
// @anush008/tokenizers), never with mcmoe. Not run by the tests; see ../README.md.
//
//   npm install @anush008/tokenizers@0.6.0 @anush008/tokenizers-linux-x64-gnu@0.6.0
//   node hf_reference.js splits hf_pre_tokenizers.json texts.json > pretokenize_expected.json
//   node hf_reference.js ids DIR/tokenizer.json texts.json > NAME.ids
//
// splits: every family's pre_tokenizer (as its tokenizer.json writes it) applied to every
// text; ByteLevel's byte characters are mapped back to the text's bytes.
// ids: encode(text, add_special_tokens = false), one line of ids per text.
'use strict';
const fs = require('fs');
const { Tokenizer } = require('@anush008/tokenizers');

// GPT-2's bytes_to_unicode, inverted: byte-level character → byte.
function byteLevelDecoder() {
  const map = new Map();
  let n = 0;
  for (let b = 0; b < 256; ++b) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    map.set(String.fromCodePoint(printable ? b : 256 + n++), b);
  }
  return (piece) => Buffer.from([...piece].map((c) => map.get(c))).toString('utf8');
}

function splits(preFile, textsFile) {
  const families = JSON.parse(fs.readFileSync(preFile, 'utf8'));
  const texts = JSON.parse(fs.readFileSync(textsFile, 'utf8'));
  const decode = byteLevelDecoder();
  const out = {};
  for (const [name, entry] of Object.entries(families)) {
    const json = {
      version: '1.0', added_tokens: [], normalizer: null, pre_tokenizer: entry.pre_tokenizer,
      post_processor: null, decoder: null, model: { type: 'BPE', vocab: { a: 0 }, merges: [] },
    };
    const pre = Tokenizer.fromString(JSON.stringify(json)).getPreTokenizer();
    out[name] = texts.map((t) => pre.preTokenizeString(t).map(([piece]) => decode(piece)));
  }
  process.stdout.write(JSON.stringify(out, null, 0) + '\n');
}

async function ids(tokenizerFile, textsFile) {
  const tok = Tokenizer.fromFile(tokenizerFile);
  const texts = JSON.parse(fs.readFileSync(textsFile, 'utf8'));
  for (const t of texts) {
    const e = await tok.encode(t, null, { addSpecialTokens: false });
    process.stdout.write(e.getIds().join(' ') + '\n');
  }
}

const [mode, a, b] = process.argv.slice(2);
if (mode === 'splits') splits(a, b);
else if (mode === 'ids') ids(a, b);
else {
  process.stderr.write('usage: hf_reference.js splits PRE.json TEXTS.json | ids tokenizer.json TEXTS.json\n');
  process.exit(2);
}
