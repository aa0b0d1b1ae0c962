#!/usr/bin/python3
"""Independent reference of bitsandbytes' blockwise quantization, and the fixtures of src/engine/quant.

Run with Debian's python3-torch:
    /usr/bin/python3 scripts/bnb_reference.py [--out fixtures/quant/codecs.json] [--check]
    /usr/bin/python3 scripts/bnb_reference.py --qlora MODELS_DIR [--qlora-out fixtures/quant]
    /usr/bin/python3 scripts/bnb_reference.py --read-folder QUANTIZED_DIR ORIGINAL_DIR
    /usr/bin/python3 scripts/bnb_reference.py --write-bnb MODELS_DIR [--qlora-out fixtures/quant]

--write-bnb stands in for a pre-quantized checkpoint from the Hub: it writes the projection weights
of the tiny qwen2-tied-bf16 model the way bitsandbytes' Linear4bit state dict holds them
(QuantState.as_dict(packed=True): packed weight, absmax codes, quant_map, nested_absmax,
nested_quant_map, and the quant_state JSON as json.dumps writes it) into
fixtures/quant/bnb-qwen2-nf4-dq.safetensors, and the causal-LM loss of the model with those
weights dequantized (scripts/torch_reference.py's model) into bnb-qwen2-nf4-dq.json.

--read-folder checks a folder written by `whetstone quantize --to nf4|fp4` the way transformers +
bitsandbytes read one (QuantState.from_dict over the packed keys): every quantized weight's tensors
must be exactly what this reference computes from the original weights, and its dequantization
close to them; non-quantized tensors must be copied unchanged.

MODELS_DIR holds the tiny model folders of scripts/tiny/write-models.ts. --qlora writes the QLoRA
fixture: the causal-LM loss and adapter gradients of fixtures/lora/llama3-untied-f32-lora over its
model whose projection weights are replaced by their NF4 (block 64, double-quantized) dequantization,
computed by scripts/peft_reference.py's PyTorch model (PEFT's LoRA semantics, float32).

Written from the algorithm bitsandbytes implements (functional.py quantize_4bit / dequantize_4bit /
quantize_blockwise / create_dynamic_map, and its kernels' decision thresholds), vectorised with numpy
and torch, without importing bitsandbytes:

- 4-bit (NF4, FP4): flatten row-major, blocks of `blocksize` (the last may be short), float32 absmax
  per block, x * float32(1/absmax), code by the thresholds bitsandbytes' quantizers compare against
  (a value above threshold i gets the upper code; FP4: sign bit for x < 0, then the magnitude), two
  codes per byte with the even element in the high nibble, a zero padded to an even count.
  A block of zeros scales to NaN and gets code 0.
- Double quantization: offset = mean(absmax) (float64 mean rounded to float32), (absmax - offset)
  quantized blockwise in blocks of 256 with the signed dynamic map: nearest value, a value exactly
  on a midpoint goes to the lower one. The dynamic map comes from torch.linspace here, so the
  TypeScript re-derivation of linspace is checked against torch itself.
- INT8: per-row absmax (SCB), round(x * (127 / SCB)) half to even.
- INT4: per-row groups of `group` columns; symmetric scale = absmax / 7, codes round(x / scale) + 8;
  asymmetric scale = (max - min) / 15, zero = round(-min / scale), codes round(x / scale) + zero,
  clamped to [0, 15]; packed as NF4.

The fixture file holds, per case, the seed of its deterministic input (make_input), the expected packed
bytes, absmax, nested codes/absmax/offset or scales/zeros (base64, little-endian) and the SHA-256 of the
dequantized float32 values.
--check re-derives every case and also checks dequantization against an unvectorised loop.
"""

import argparse
import base64
import hashlib
import json
import os
import sys

import numpy as np
import torch

F32 = np.float32

NF4 = np.array(
    [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
     -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
     0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=F32)
# Midpoints of neighbouring NF4 values as bitsandbytes' decision tree holds them (float32 literals).
NF4_THRESHOLDS = np.array(
    [-0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544, -0.23460740596055984,
     -0.13791173323988914, -0.045525018125772476, 0.03979014977812767, 0.1202552504837513, 0.2035212516784668,
     0.2920137718319893, 0.3893125355243683, 0.5016634166240692, 0.6427869200706482, 0.8614784181118011], dtype=F32)
FP4 = (torch.tensor([0, 0.0625, 8, 12, 4, 6, 2, 3, -0.0, -0.0625, -8, -12, -4, -6, -2, -3], dtype=torch.float32) / 12).numpy()
FP4_THRESHOLDS = np.array([0.00260417, 0.0859375, 0.20833333, 0.29166667, 0.4166667, 0.583333, 0.8333333], dtype=F32)
FP4_MAGNITUDE = np.array([0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011], dtype=np.uint8)


def dynamic_map():
    """create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8), computed with torch in float32."""
    data = []
    for i in range(7):
        bounds = torch.linspace(0.1, 1, 2 ** i + 1)
        means = (bounds[:-1] + bounds[1:]) / 2.0
        scale = 10 ** (-6 + i)
        data += (scale * means).tolist()
        data += (-scale * means).tolist()
    data.append(0)
    data.append(1.0)
    assert len(data) == 256
    data.sort()
    return np.array(data, dtype=F32)


DYNAMIC = dynamic_map()


def block_absmax(x, blocksize):
    n = x.size
    blocks = -(-n // blocksize)
    padded = np.zeros(blocks * blocksize, dtype=F32)
    padded[:n] = np.abs(x)
    return padded.reshape(blocks, blocksize).max(axis=1).astype(F32)


def scale_blocks(x, absmax, blocksize):
    with np.errstate(divide="ignore", invalid="ignore"):
        recip = (F32(1) / absmax).astype(F32)
        return (x * np.repeat(recip, blocksize)[: x.size]).astype(F32)


def codes_4bit(scaled, quant_type):
    if quant_type == "nf4":
        # number of thresholds strictly below x; NaN compares false everywhere -> 0
        return (scaled[:, None] > NF4_THRESHOLDS[None, :]).sum(axis=1).astype(np.uint8)
    sign = np.where(scaled < 0, 8, 0).astype(np.uint8)
    mag = (np.abs(scaled)[:, None] > FP4_THRESHOLDS[None, :]).sum(axis=1)
    return (sign + FP4_MAGNITUDE[mag]).astype(np.uint8)


def quantize_blockwise_dynamic(x, blocksize=256):
    absmax = block_absmax(x, blocksize)
    scaled = np.clip(scale_blocks(x, absmax, blocksize), -1, 1)
    mids = ((DYNAMIC[:-1] + DYNAMIC[1:]).astype(F32) * F32(0.5)).astype(F32)
    # first midpoint >= x: values on a midpoint go down
    codes = np.searchsorted(mids, scaled, side="left").astype(np.uint8)
    codes[np.isnan(scaled)] = 0
    return codes, absmax


def quantize_4bit(x, quant_type, blocksize, double_quant):
    x = x.astype(F32).reshape(-1)
    absmax = block_absmax(x, blocksize)
    codes = codes_4bit(scale_blocks(x, absmax, blocksize), quant_type)
    if codes.size % 2:
        codes = np.concatenate([codes, codes_4bit(np.zeros(1, dtype=F32), quant_type)])
    packed = ((codes[0::2] << 4) | codes[1::2]).astype(np.uint8)
    out = {"packed": packed}
    if double_quant:
        offset = F32(absmax.astype(np.float64).mean())
        qcodes, nabsmax = quantize_blockwise_dynamic((absmax - offset).astype(F32), 256)
        out.update(nested_codes=qcodes, nested_absmax=nabsmax, offset=offset)
        deq_absmax = ((DYNAMIC[qcodes] * np.repeat(nabsmax, 256)[: qcodes.size]).astype(F32) + offset).astype(F32)
    else:
        out["absmax"] = absmax
        deq_absmax = absmax
    table = NF4 if quant_type == "nf4" else FP4
    out["dequant"] = (table[codes[: x.size]] * np.repeat(deq_absmax, blocksize)[: x.size]).astype(F32)
    return out


def round_half_even(x):
    return np.round(x)  # numpy rounds half to even


def quantize_int8(w):
    w = w.astype(F32)
    scb = np.abs(w).max(axis=1).astype(F32)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (F32(127) / scb).astype(F32)
        q = round_half_even((w * s[:, None]).astype(F32))
    q = np.nan_to_num(q, nan=0).astype(np.int8)
    deq = ((q.astype(F32) * scb[:, None]).astype(F32) * F32(7.874015718698502e-3)).astype(F32)
    return {"codes": q, "scb": scb, "dequant": deq.reshape(-1)}


def quantize_int4(w, group, symmetric):
    w = w.astype(F32)
    rows, cols = w.shape
    G = -(-cols // group)
    scales = np.zeros((rows, G), dtype=F32)
    zeros = np.full((rows, G), 8, dtype=np.uint8)
    codes = np.zeros((rows, cols), dtype=np.uint8)
    for g in range(G):
        blk = w[:, g * group:(g + 1) * group]
        lo = np.minimum(blk.min(axis=1), 0).astype(F32)
        hi = np.maximum(blk.max(axis=1), 0).astype(F32)
        if symmetric:
            scale = (np.maximum(-lo, hi) / F32(7)).astype(F32)
            zero = np.full(rows, 8, dtype=np.int64)
        else:
            scale = ((hi - lo).astype(F32) / F32(15)).astype(F32)
            with np.errstate(divide="ignore", invalid="ignore"):
                zero = np.clip(round_half_even((-lo / scale).astype(F32)), 0, 15)
            zero = np.where(scale == 0, 0, zero).astype(np.int64)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = round_half_even((blk / scale[:, None]).astype(F32))
        q = np.where(scale[:, None] == 0, zero[:, None], np.clip(q + zero[:, None], 0, 15))
        codes[:, g * group:(g + 1) * group] = q.astype(np.uint8)
        scales[:, g] = scale
        zeros[:, g] = zero
    flat = codes.reshape(-1)
    if flat.size % 2:
        flat = np.concatenate([flat, np.zeros(1, dtype=np.uint8)])
    packed = ((flat[0::2] << 4) | flat[1::2]).astype(np.uint8)
    gi = np.arange(cols) // group
    deq = ((codes.astype(np.int64) - zeros[:, gi].astype(np.int64)).astype(F32) * scales[:, gi]).astype(F32)
    out = {"packed": packed, "scales": scales.reshape(-1), "dequant": deq.reshape(-1)}
    if not symmetric:
        out["zeros"] = zeros.reshape(-1)
    return out


def b64(a):
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def make_input(seed, shape, zero_block=None):
    """Deterministic test values, reproducible bit for bit in TypeScript (src/engine/quant/testing.ts):
    a 31-bit LCG, the sum of four 24-bit uniforms minus 2, times 0.05, every 7th value times 9 (the
    outliers real weights have), rounded once to float32; an optional run of zeros (an all-zero block)."""
    n = int(np.prod(shape))
    state = seed
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        s = 0.0
        for _ in range(4):
            state = (state * 1103515245 + 12345) % 2 ** 31
            s += (state >> 7) / 2 ** 24
        v = (s - 2) * 0.05
        if i % 7 == 0:
            v *= 9
        out[i] = v
    x = out.astype(F32)
    if zero_block is not None:
        start, length = zero_block
        x[start:start + length] = 0
    return x.reshape(shape)


def sha(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


CASES_4BIT = [
    # name, shape, type, blocksize, double quant, seed, zero block
    ("nf4-7x13-b64", (7, 13), "nf4", 64, False, 1, None),
    ("fp4-7x13-b64", (7, 13), "fp4", 64, False, 2, None),
    ("nf4-33x70-b32-zero", (33, 70), "nf4", 32, False, 3, (64, 32)),
    ("fp4-33x70-b128", (33, 70), "fp4", 128, False, 4, None),
    ("nf4-65x128-b32-dq", (65, 128), "nf4", 32, True, 5, None),
    ("fp4-40x100-b64-dq", (40, 100), "fp4", 64, True, 6, None),
    ("nf4-3x1000-b4096", (3, 1000), "nf4", 4096, False, 7, None),
]
CASES_INT8 = [("int8-9x37", (9, 37), 8)]
CASES_INT4 = [
    ("int4-9x70-g32-sym", (9, 70), 32, True, 9),
    ("int4-9x70-g64-asym", (9, 70), 64, False, 10),
    ("int4-5x128-g128-asym", (5, 128), 128, False, 11),
]


def build():
    cases = []
    for name, shape, qt, bs, dq, seed, zb in CASES_4BIT:
        x = make_input(seed, shape, zb)
        r = quantize_4bit(x, qt, bs, dq)
        case = {"name": name, "kind": "4bit", "quant_type": qt, "blocksize": bs, "double_quant": dq, "shape": list(shape),
                "seed": seed, "zero_block": list(zb) if zb else None, "packed": b64(r["packed"]), "dequant_sha256": sha(r["dequant"])}
        if dq:
            case.update(nested_codes=b64(r["nested_codes"]), nested_absmax=b64(r["nested_absmax"]), offset=float(r["offset"]))
        else:
            case["absmax"] = b64(r["absmax"])
        cases.append(case)
    for name, shape, seed in CASES_INT8:
        x = make_input(seed, shape, (2 * shape[1], shape[1]))  # row 2 all zeros
        r = quantize_int8(x)
        cases.append({"name": name, "kind": "int8", "shape": list(shape), "seed": seed, "zero_block": [2 * shape[1], shape[1]],
                      "codes": b64(r["codes"]), "scb": b64(r["scb"]), "dequant_sha256": sha(r["dequant"])})
    for name, shape, group, sym, seed in CASES_INT4:
        x = make_input(seed, shape)
        r = quantize_int4(x, group, sym)
        case = {"name": name, "kind": "int4", "shape": list(shape), "group_size": group, "symmetric": sym, "seed": seed,
                "packed": b64(r["packed"]), "scales": b64(r["scales"]), "dequant_sha256": sha(r["dequant"])}
        if not sym:
            case["zeros"] = b64(r["zeros"])
        cases.append(case)
    return {"generator": "scripts/bnb_reference.py", "dynamic_map": b64(DYNAMIC), "nf4": b64(NF4), "fp4": b64(FP4), "cases": cases}


def check(data):
    """Unvectorised dequantization and nearest-code checks of every 4-bit case."""
    for c in data["cases"]:
        if c["kind"] != "4bit":
            continue
        x = make_input(c["seed"], tuple(c["shape"]), c["zero_block"]).reshape(-1)
        packed = np.frombuffer(base64.b64decode(c["packed"]), dtype=np.uint8)
        table = NF4 if c["quant_type"] == "nf4" else FP4
        bs = c["blocksize"]
        absmax = block_absmax(x, bs)
        for i in range(x.size):
            code = (packed[i // 2] >> 4) if i % 2 == 0 else (packed[i // 2] & 15)
            if absmax[i // bs] == 0:
                assert code == 0, (c["name"], i)
                continue
            s = F32(x[i] * F32(F32(1) / absmax[i // bs]))
            best = np.abs(table - s).min()
            # the chosen code is a nearest one up to float32 rounding of the thresholds
            assert abs(abs(table[code] - s) - best) < 1e-6, (c["name"], i, code, s)
    print(f"checked {len(data['cases'])} cases")


QLORA_CASES = [
    # fixture name, adapter under fixtures/lora, quant type, blocksize, double quant, with gradients
    ("qlora-llama3-nf4-dq", "llama3-untied-f32-lora", "nf4", 64, True, True),
    ("qlora-llama3-fp4", "llama3-untied-f32-lora", "fp4", 64, False, False),
]


def qlora_fixtures(models_dir, out_dir):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import peft_reference as pr  # noqa: E402

    torch.set_num_threads(1)
    lora_dir = os.path.join(here, "..", "fixtures", "lora")
    for name, adapter_name, qt, bs, dq, with_grads in QLORA_CASES:
        spec = next(a for a in pr.ADAPTERS if a["name"] == adapter_name)
        model_folder = os.path.join(models_dir, spec["model"])
        with open(os.path.join(model_folder, "config.json")) as f:
            config = pr.Config(json.load(f))
        with open(os.path.join(model_folder, "tokenizer.json")) as f:
            tokenizer_json = json.load(f)
        weights = pr.read_safetensors(os.path.join(model_folder, "model.safetensors"))
        quantized = dict(weights)
        errors = {}
        for k, v in weights.items():
            if k.endswith("_proj.weight"):
                deq = quantize_4bit(v.float().numpy(), qt, bs, dq)["dequant"].reshape(tuple(v.shape))
                quantized[k] = torch.from_numpy(deq.copy())
                errors[k] = pr.rel_l2(deq, v.float().numpy())
        adapter_config, adapter_tensors = pr.read_adapter(os.path.join(lora_dir, adapter_name))
        rows = [pr.bpe_encode(tokenizer_json, t) for t in pr.TEXTS]
        labels = [list(rows[0]), [pr.IGNORE_INDEX, pr.IGNORE_INDEX] + rows[1][2:]]
        loss, count, per_row, grads, _ = pr.run(config, quantized, adapter_config, adapter_tensors, rows, labels, torch.float32)
        base_loss, _, _, _, _ = pr.run(config, weights, adapter_config, adapter_tensors, rows, labels, torch.float32)
        fixture = {
            "name": name,
            "model": spec["model"],
            "adapter": adapter_name,
            "reference": "scripts/bnb_reference.py --qlora (torch %s, float32, eval mode)" % torch.__version__,
            "model_files": {f: pr.sha256(os.path.join(model_folder, f)) for f in sorted(os.listdir(model_folder))},
            "quant": {"format": qt, "block": bs, "double_quant": dq},
            "weight_rel_l2": {k: round(v, 6) for k, v in sorted(errors.items())},
            "input_ids": rows,
            "labels": labels,
            "tokens": count,
            "loss": loss,
            "loss_per_row": per_row,
            "unquantized_loss": base_loss,
        }
        if with_grads:
            fixture["grads"] = {k: {"shape": list(v.shape), "values": [pr.round_sig(x) for x in v.flatten().tolist()]} for k, v in sorted(grads.items())}
        path = os.path.join(out_dir, name + ".json")
        with open(path, "w") as f:
            json.dump(fixture, f, separators=(",", ":"))
            f.write("\n")
        print("%s: loss %.6f (unquantized %.6f), %d tokens -> %s" % (name, loss, base_loss, count, path))


def read_safetensors_raw(path):
    """{name: (dtype, shape, bytes)} of a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    base = 8 + n
    return {k: (v["dtype"], v["shape"], data[base + v["data_offsets"][0]:base + v["data_offsets"][1]]) for k, v in header.items()}


NP = {"F32": np.float32, "F16": np.float16, "U8": np.uint8, "I8": np.int8}


def to_f32(dtype, raw):
    if dtype == "BF16":
        u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
        return u.view(np.float32)
    return np.frombuffer(raw, dtype=NP[dtype]).astype(F32)


def read_folder(quantized_dir, original_dir):
    q = read_safetensors_raw(os.path.join(quantized_dir, "model.safetensors"))
    o = read_safetensors_raw(os.path.join(original_dir, "model.safetensors"))
    with open(os.path.join(quantized_dir, "config.json")) as f:
        qc = json.load(f)["quantization_config"]
    assert qc["quant_method"] == "bitsandbytes" and qc["load_in_4bit"], qc
    checked = 0
    for name, (dtype, shape, raw) in o.items():
        states = [k for k in q if k.startswith(name + ".quant_state.bitsandbytes__")]
        if not states:
            assert q[name] == (dtype, shape, raw), "%s was not copied unchanged" % name
            continue
        state = json.loads(bytes(q[states[0]][2]).decode("utf-8"))
        qt, bs = state["quant_type"], state["blocksize"]
        assert states[0].endswith(qt) and state["shape"] == shape and qt == qc["bnb_4bit_quant_type"], state
        w = to_f32(dtype, raw)
        dq = "nested_offset" in state
        assert dq == qc["bnb_4bit_use_double_quant"]
        want = quantize_4bit(w, qt, bs, dq)
        packed = np.frombuffer(q[name][2], dtype=np.uint8)
        assert q[name][1] == [packed.size, 1] and np.array_equal(packed, want["packed"]), name
        qmap = np.frombuffer(q[name + ".quant_map"][2], dtype=F32)
        assert np.array_equal(qmap, NF4 if qt == "nf4" else FP4), name
        if dq:
            codes = np.frombuffer(q[name + ".absmax"][2], dtype=np.uint8)
            nested = np.frombuffer(q[name + ".nested_absmax"][2], dtype=F32)
            nmap = np.frombuffer(q[name + ".nested_quant_map"][2], dtype=F32)
            assert np.array_equal(codes, want["nested_codes"]) and np.array_equal(nested, want["nested_absmax"]), name
            assert np.array_equal(nmap, DYNAMIC) and F32(state["nested_offset"]) == want["offset"], name
            absmax = ((nmap[codes] * np.repeat(nested, 256)[: codes.size]).astype(F32) + F32(state["nested_offset"])).astype(F32)
        else:
            absmax = np.frombuffer(q[name + ".absmax"][2], dtype=F32)
            assert np.array_equal(absmax, want["absmax"]), name
        codes4 = np.empty(packed.size * 2, dtype=np.uint8)
        codes4[0::2], codes4[1::2] = packed >> 4, packed & 15
        deq = (qmap[codes4[: w.size]] * np.repeat(absmax, bs)[: w.size]).astype(F32)
        err = float(np.linalg.norm(deq - w) / np.linalg.norm(w))
        assert err < 0.2, (name, err)
        checked += 1
    print("read %s: %d quantized weights match the reference bit for bit; the rest copied unchanged" % (quantized_dir, checked))


def write_safetensors_raw(path, tensors):
    """tensors: list of (name, dtype, shape, bytes); written in the given order, header padded to 8."""
    header, offset = {}, 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h)
        for _, _, _, raw in tensors:
            f.write(raw)


def write_bnb(models_dir, out_dir):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import torch_reference as tr  # noqa: E402

    model = "qwen2-tied-bf16"
    folder = os.path.join(models_dir, model)
    raw = read_safetensors_raw(os.path.join(folder, "model.safetensors"))
    weights = tr.read_safetensors(os.path.join(folder, "model.safetensors"))
    with open(os.path.join(folder, "config.json")) as f:
        config = tr.Config(json.load(f))
    with open(os.path.join(folder, "tokenizer.json")) as f:
        tokenizer_json = json.load(f)
    parts = []
    deq = dict(weights)
    for name in sorted(raw):
        dtype, shape, data = raw[name]
        if not name.endswith("_proj.weight"):
            continue
        w = to_f32(dtype, data)
        r = quantize_4bit(w, "nf4", 64, True)
        deq[name] = torch.from_numpy(r["dequant"].reshape(shape).copy())
        state = {"quant_type": "nf4", "absmax": None, "blocksize": 64, "quant_map": None, "dtype": "bfloat16", "shape": shape,
                 "nested_absmax": None, "nested_blocksize": 256, "nested_quant_map": None, "nested_dtype": "float32",
                 "nested_offset": float(r["offset"])}
        # QuantState.as_dict(packed=True): tensors apart, the rest as JSON bytes
        state = {k: v for k, v in state.items() if v is not None}
        parts += [
            (name, "U8", [r["packed"].size, 1], r["packed"].tobytes()),
            (name + ".absmax", "U8", [r["nested_codes"].size], r["nested_codes"].tobytes()),
            (name + ".quant_map", "F32", [16], NF4.tobytes()),
            (name + ".nested_absmax", "F32", [r["nested_absmax"].size], r["nested_absmax"].tobytes()),
            (name + ".nested_quant_map", "F32", [256], DYNAMIC.tobytes()),
            (name + ".quant_state.bitsandbytes__nf4", "U8", [len(json.dumps(state).encode())], json.dumps(state).encode("utf-8")),
        ]
    write_safetensors_raw(os.path.join(out_dir, "bnb-qwen2-nf4-dq.safetensors"), parts)
    rows = [tr.bpe_encode(tokenizer_json, t) for t in tr.TEXTS]
    losses = []
    m = tr.TorchModel(config, deq)
    with torch.no_grad():
        for ids in rows:
            x = torch.tensor([ids], dtype=torch.int64)
            losses.append(float(tr.causal_lm_loss(m.logits(x), x)))
    fixture = {"model": model, "reference": "scripts/bnb_reference.py --write-bnb (torch %s, float32)" % torch.__version__,
               "model_files": {f: tr.sha256(os.path.join(folder, f)) for f in sorted(os.listdir(folder))},
               "input_ids": rows, "loss_per_row": losses}
    with open(os.path.join(out_dir, "bnb-qwen2-nf4-dq.json"), "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    print("wrote %d bitsandbytes tensors for %s; losses %s" % (len(parts), model, losses))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "fixtures", "quant", "codecs.json"))
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--qlora", metavar="MODELS_DIR", help="write the QLoRA fixtures from the tiny model folders in MODELS_DIR")
    ap.add_argument("--qlora-out", default=os.path.join(os.path.dirname(__file__), "..", "fixtures", "quant"))
    ap.add_argument("--read-folder", nargs=2, metavar=("QUANTIZED_DIR", "ORIGINAL_DIR"))
    ap.add_argument("--write-bnb", metavar="MODELS_DIR")
    args = ap.parse_args()
    if args.write_bnb:
        write_bnb(args.write_bnb, args.qlora_out)
        return
    if args.read_folder:
        read_folder(*args.read_folder)
        return
    if args.qlora:
        qlora_fixtures(args.qlora, args.qlora_out)
        return
    data = build()
    if args.check:
        check(data)
    with open(args.out, "w") as fh:
        json.dump(data, fh, indent=1)
        fh.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
