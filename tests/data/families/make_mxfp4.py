"""gpt-oss's released MXFP4 layout from a float checkpoint of ../shared/tools/moe_reference.py:
   make_mxfp4.py FLOAT_DIR MXFP4_DIR FLOAT_TWIN_DIR

MXFP4_DIR gets the experts as Hugging Face's gpt-oss checkpoints keep them (transformers'
convert_moe_packed_tensors is the reader this follows): for gate_up_proj [E, hidden, 2 ff] and
down_proj [E, ff, hidden] (used as x @ W), in the transposed nn.Linear orientation [E, out, in]:
  <name>_blocks  U8 [E, out, in / 32, 16]  32 E2M1 codes per block, element 2 j in the low
                                           nibble of byte j, 2 j + 1 in the high one
  <name>_scales  U8 [E, out, in / 32]      E8M0 exponent s: value = FP4[code] * 2^(s - 127)
and config.json a quantization_config {"quant_method": "mxfp4"}. Codes: the nearest E2M1 value
of w / 2^k, k the smallest integer with max |w| / 2^k <= 6 over the block (ties to the even
code). FLOAT_TWIN_DIR gets the same model with the experts replaced by their dequantized
values, in F32: the weights the MXFP4 checkpoint stands for exactly."""
import json, os, struct, sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../../../shared/tools"))
import moe_reference as ref  # noqa: E402

FP4 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0], np.float32)


def quantize(w):  # w [E, out, in] float32 -> blocks, scales, dequantized
    e, out, n = w.shape
    b = w.reshape(e, out, n // 32, 32)
    amax = np.abs(b).max(-1)
    k = np.where(amax > 0, np.ceil(np.log2(np.maximum(amax, 1e-30) / 6.0)), -127).astype(np.int32)
    k = np.clip(k, -127, 127)
    scaled = b / np.ldexp(1.0, k)[..., None]
    idx = np.abs(np.abs(scaled)[..., None] - FP4[:8]).argmin(-1)  # nearest magnitude (first of ties: the even code)
    codes = (idx + 8 * (scaled < 0)).astype(np.uint8)
    packed = (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)
    scales = (k + 127).astype(np.uint8)
    deq = FP4[codes] * np.ldexp(1.0, k)[..., None]
    return packed, scales, deq.reshape(e, out, n).astype(np.float32)


def save_mixed(path, tensors):  # name -> (dtype string, numpy array)
    header, blobs, off = {}, [], 0
    for name, (dt, arr) in tensors.items():
        b = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    src, mx_dir, twin_dir = sys.argv[1:4]
    cfg = json.load(open(os.path.join(src, "config.json")))
    tensors = {k: v.numpy() for k, v in ref.load_safetensors(os.path.join(src, "model.safetensors")).items()}
    mx, twin = {}, {}
    for name, arr in tensors.items():
        if name.endswith(("experts.gate_up_proj", "experts.down_proj")):
            blocks, scales, deq = quantize(np.ascontiguousarray(arr.transpose(0, 2, 1)))  # [E, out, in]
            mx[name + "_blocks"] = ("U8", blocks)
            mx[name + "_scales"] = ("U8", scales)
            twin[name] = ("F32", np.ascontiguousarray(deq.transpose(0, 2, 1)))
        else:
            mx[name] = twin[name] = ("F32", arr.astype(np.float32))
    for d in (mx_dir, twin_dir):
        os.makedirs(d, exist_ok=True)
    save_mixed(os.path.join(mx_dir, "model.safetensors"), mx)
    save_mixed(os.path.join(twin_dir, "model.safetensors"), twin)
    json.dump(cfg, open(os.path.join(twin_dir, "config.json"), "w"), indent=2)
    cfg["quantization_config"] = {"quant_method": "mxfp4",
                                  "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                                             "model.embed_tokens", "lm_head"]}
    json.dump(cfg, open(os.path.join(mx_dir, "config.json"), "w"), indent=2)


if __name__ == "__main__":
    main()
