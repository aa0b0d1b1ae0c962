#!/usr/bin/python3
"""PyTorch reference for the Llama-family forward pass, loss and greedy generation.

Run with Debian's python3-torch:
    /usr/bin/python3 scripts/torch_reference.py MODELS_DIR [--out fixtures/models] [--check]

MODELS_DIR holds Hugging Face model folders (config.json, model.safetensors, tokenizer.json ...), as
scripts/tiny/write-models.ts writes them. For each folder this script writes OUT/<name>.json with the
token ids of two fixed texts, the logits of every position of row 0, the causal-LM loss of each row,
20 greedy tokens continuing row 0 and the SHA-256 of every file of the folder.

The model is a from-scratch float32 re-implementation of transformers' LlamaForCausalLM,
MistralForCausalLM, Qwen2ForCausalLM and Qwen3ForCausalLM in eval mode (eager attention): weights
are read from safetensors with numpy (BF16 widened to float32 exactly), and every operation follows
the transformers code it names. It needs neither transformers nor safetensors nor tokenizers: the
byte-level BPE encoder below handles the ASCII texts of the fixtures.

--check also runs the self-checks: the loss computed a second way (explicit shift, log-softmax and
gather), a float64 numpy forward written independently (per-head loops, pairwise RoPE, kv head
h // groups) against the torch logits, and the BPE encoder on a longer text. Without --check only
the loss check runs.
"""

import argparse
import hashlib
import json
import math
import os
import re
import sys

import numpy as np
import torch
import torch.nn.functional as F

TEXTS = [
    "The sea is wide and deep.",  # row 0: 11 tokens
    "Tea is warm.",  # row 1: 7 tokens
]
NEW_TOKENS = 20
IGNORE_INDEX = -100
SIGNIFICANT_DIGITS = 7


# ---------------------------------------------------------------------------------------------
# safetensors (8-byte little-endian header length, JSON header, raw little-endian data)

NUMPY_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I8": "i1", "U8": "u1", "BOOL": "?"}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    base = 8 + n
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        raw = data[base + begin : base + end]
        if entry["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=NUMPY_DTYPES[entry["dtype"]]).astype(np.float32)
        tensors[name] = torch.from_numpy(arr.reshape(entry["shape"]).copy())
    return tensors


# ---------------------------------------------------------------------------------------------
# byte-level BPE (GPT-2 pre-tokenization), for ASCII text


def bytes_to_unicode():
    table = {}
    n = 0
    for b in range(256):
        printable = 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF
        table[b] = chr(b if printable else 256 + n)
        if not printable:
            n += 1
    return table


# GPT-2's split with \p{L} and \p{N} narrowed to ASCII letters and digits: the same on ASCII text.
GPT2_SPLIT_ASCII = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")


def bpe_encode(tokenizer_json, text):
    if not text.isascii():
        raise ValueError("the reference encoder handles ASCII text only")
    model = tokenizer_json["model"]
    vocab = model["vocab"]
    ranks = {}
    for i, m in enumerate(model["merges"]):
        a, b = m.split(" ") if isinstance(m, str) else m
        ranks.setdefault((a, b), i)
    byte_chars = bytes_to_unicode()
    ids = []
    for piece in GPT2_SPLIT_ASCII.findall(text):
        symbols = [byte_chars[b] for b in piece.encode("utf-8")]
        while len(symbols) > 1:
            best = min(range(len(symbols) - 1), key=lambda i: ranks.get((symbols[i], symbols[i + 1]), math.inf))
            pair = (symbols[best], symbols[best + 1])
            if pair not in ranks:
                break
            merged = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
                    merged.append(pair[0] + pair[1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        ids.extend(vocab[s] for s in symbols)
    return ids


# ---------------------------------------------------------------------------------------------
# configuration (transformers configuration_*.py defaults)

ARCH_DEFAULTS = {
    "LlamaForCausalLM": {"head_dim": None, "sliding_window": None, "qkv_bias": None, "qk_norm": False},
    "MistralForCausalLM": {"head_dim": None, "sliding_window": 4096, "qkv_bias": False, "qk_norm": False},
    "Qwen2ForCausalLM": {"head_dim": None, "sliding_window": None, "qkv_bias": True, "qk_norm": False},
    "Qwen3ForCausalLM": {"head_dim": 128, "sliding_window": None, "qkv_bias": None, "qk_norm": True},
}


class Config:
    def __init__(self, raw):
        self.architecture = raw["architectures"][0]
        d = ARCH_DEFAULTS[self.architecture]
        self.hidden = raw["hidden_size"]
        self.intermediate = raw["intermediate_size"]
        self.layers = raw["num_hidden_layers"]
        self.heads = raw["num_attention_heads"]
        self.kv_heads = raw.get("num_key_value_heads") or self.heads
        self.head_dim = raw.get("head_dim") or d["head_dim"] or self.hidden // self.heads
        self.vocab = raw["vocab_size"]
        self.eps = raw.get("rms_norm_eps", 1e-6)
        self.rope_theta = raw.get("rope_theta", 10000.0)
        self.rope_scaling = raw.get("rope_scaling")
        self.tied = raw.get("tie_word_embeddings", False)
        attention_bias = raw.get("attention_bias", False)
        # Qwen2: q/k/v biases always, o_proj never; Mistral: none; Llama/Qwen3: attention_bias on all four.
        self.qkv_bias = attention_bias if d["qkv_bias"] is None else d["qkv_bias"]
        self.o_bias = attention_bias if self.architecture in ("LlamaForCausalLM", "Qwen3ForCausalLM") else False
        self.qk_norm = d["qk_norm"]
        if self.architecture == "MistralForCausalLM":
            self.sliding_window = raw["sliding_window"] if "sliding_window" in raw else d["sliding_window"]
        else:
            self.sliding_window = None
            if raw.get("use_sliding_window", False):
                raise ValueError("use_sliding_window is not implemented")


# ---------------------------------------------------------------------------------------------
# the float32 torch model (transformers modeling_llama.py / modeling_qwen2.py / modeling_qwen3.py)


def default_inv_freq(config):
    # _compute_default_rope_parameters: float32 arange / dim, base ** (.), 1 / (.)
    dim = config.head_dim
    return 1.0 / (config.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.int64).to(dtype=torch.float) / dim))


def rope_inv_freq(config):
    inv_freq = default_inv_freq(config)
    s = config.rope_scaling
    if s is None or s.get("rope_type", s.get("type")) in (None, "default"):
        return inv_freq
    if s.get("rope_type", s.get("type")) != "llama3":
        raise ValueError("unsupported rope_scaling %r" % (s,))
    # _compute_llama3_parameters
    factor = s["factor"]
    low_freq_factor = s["low_freq_factor"]
    high_freq_factor = s["high_freq_factor"]
    old_context_len = s["original_max_position_embeddings"]
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)


def rotary_cos_sin(inv_freq, T):
    # LlamaRotaryEmbedding.forward; attention_scaling is 1 for default and llama3 RoPE.
    position_ids = torch.arange(T)[None, :]
    inv_freq_expanded = inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
    position_ids_expanded = position_ids[:, None, :].float()
    freqs = (inv_freq_expanded.float() @ position_ids_expanded.float()).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * 1.0, emb.sin() * 1.0  # (1, T, D)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    cos = cos.unsqueeze(1)
    sin = sin.unsqueeze(1)
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


def rms_norm(x, weight, eps):
    # LlamaRMSNorm.forward
    input_dtype = x.dtype
    h = x.to(torch.float32)
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + eps)
    return weight * h.to(input_dtype)


def repeat_kv(x, n_rep):
    b, kv, t, d = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(b, kv, n_rep, t, d).reshape(b, kv * n_rep, t, d)


def causal_mask(T, sliding_window):
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    allowed = j <= i
    if sliding_window is not None:
        allowed = allowed & (j > i - sliding_window)
    return torch.where(allowed, 0.0, torch.finfo(torch.float32).min)  # (T, T)


class TorchModel:
    def __init__(self, config, weights):
        self.c = config
        self.w = weights
        self.inv_freq = rope_inv_freq(config)

    def linear(self, x, name, bias):
        return F.linear(x, self.w[name + ".weight"], self.w[name + ".bias"] if bias else None)

    def attention(self, x, p, cos, sin, mask):
        c = self.c
        B, T, _ = x.shape
        shape = (B, T, -1, c.head_dim)
        q = self.linear(x, p + "q_proj", c.qkv_bias).view(shape)
        k = self.linear(x, p + "k_proj", c.qkv_bias).view(shape)
        v = self.linear(x, p + "v_proj", c.qkv_bias).view(shape).transpose(1, 2)
        if c.qk_norm:
            q = rms_norm(q, self.w[p + "q_norm.weight"], c.eps)
            k = rms_norm(k, self.w[p + "k_norm.weight"], c.eps)
        q, k = q.transpose(1, 2), k.transpose(1, 2)  # (B, H, T, D)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        groups = c.heads // c.kv_heads
        k = repeat_kv(k, groups)
        v = repeat_kv(v, groups)
        scores = torch.matmul(q, k.transpose(2, 3)) * c.head_dim**-0.5 + mask  # (B, H, T, T)
        probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        out = torch.matmul(probs, v).transpose(1, 2).contiguous().reshape(B, T, -1)  # (B, T, H*D)
        return self.linear(out, p + "o_proj", c.o_bias)

    def mlp(self, x, p):
        return self.linear(F.silu(self.linear(x, p + "gate_proj", False)) * self.linear(x, p + "up_proj", False), p + "down_proj", False)

    def logits(self, ids):
        """ids (B, T) int64 -> logits (B, T, V) float32."""
        c = self.c
        T = ids.shape[1]
        h = F.embedding(ids, self.w["model.embed_tokens.weight"])  # (B, T, C)
        cos, sin = rotary_cos_sin(self.inv_freq, T)
        mask = causal_mask(T, c.sliding_window)
        for layer in range(c.layers):
            p = "model.layers.%d." % layer
            h = h + self.attention(rms_norm(h, self.w[p + "input_layernorm.weight"], c.eps), p + "self_attn.", cos, sin, mask)
            h = h + self.mlp(rms_norm(h, self.w[p + "post_attention_layernorm.weight"], c.eps), p + "mlp.")
        h = rms_norm(h, self.w["model.norm.weight"], c.eps)
        head = self.w["model.embed_tokens.weight"] if c.tied else self.w["lm_head.weight"]
        return F.linear(h, head).float()


def causal_lm_loss(logits, labels):
    # transformers loss_utils.ForCausalLMLoss (no num_items_in_batch): pad labels with one -100,
    # shift left, cross-entropy with ignore_index, mean over the kept tokens.
    logits = logits.float()
    labels = F.pad(labels, (0, 1), value=IGNORE_INDEX)
    shift_labels = labels[..., 1:].contiguous()
    V = logits.shape[-1]
    return F.cross_entropy(logits.view(-1, V), shift_labels.view(-1), ignore_index=IGNORE_INDEX, reduction="mean")


def causal_lm_loss_explicit(logits, labels):
    # The same loss the long way: drop the last position, gather -log p of the next label, average
    # over the positions whose next label is kept.
    logp = torch.log_softmax(logits[:, :-1, :].double(), dim=-1)
    nxt = labels[:, 1:]
    keep = nxt != IGNORE_INDEX
    picked = logp.gather(-1, nxt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return -(picked * keep).sum() / keep.sum()


def greedy(model, ids, n):
    """n greedy tokens after ids (1, T), recomputing the whole forward at every step (no cache)."""
    out, margins = [], []
    seq = ids
    for _ in range(n):
        last = model.logits(seq)[0, -1]
        top = torch.topk(last, 2).values
        nxt = int(torch.argmax(last))
        out.append(nxt)
        margins.append(float(top[0] - top[1]))
        seq = torch.cat([seq, torch.tensor([[nxt]], dtype=seq.dtype)], dim=1)
    return out, margins


# ---------------------------------------------------------------------------------------------
# an independent float64 numpy forward, for --check


def numpy_logits(config, weights, ids):
    c = config
    w = {k: v.double().numpy() for k, v in weights.items()}

    def norm(x, g):
        return g * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + c.eps))

    def lin(x, name, bias):
        y = x @ w[name + ".weight"].T
        return y + w[name + ".bias"] if bias else y

    half = c.head_dim // 2
    inv = rope_inv_freq(c).double().numpy()

    def rope(x):  # x (T, D): rotate each pair (i, i + D/2) by angle t * inv[i]
        y = np.empty_like(x)
        for t in range(x.shape[0]):
            for i in range(half):
                a = t * inv[i]
                x0, x1 = x[t, i], x[t, i + half]
                y[t, i] = x0 * math.cos(a) - x1 * math.sin(a)
                y[t, i + half] = x1 * math.cos(a) + x0 * math.sin(a)
        return y

    T = len(ids)
    h = w["model.embed_tokens.weight"][np.array(ids)]
    groups = c.heads // c.kv_heads
    for layer in range(c.layers):
        p = "model.layers.%d." % layer
        x = norm(h, w[p + "input_layernorm.weight"])
        q = lin(x, p + "self_attn.q_proj", c.qkv_bias)
        k = lin(x, p + "self_attn.k_proj", c.qkv_bias)
        v = lin(x, p + "self_attn.v_proj", c.qkv_bias)
        heads_out = []
        for hd in range(c.heads):
            kv = hd // groups
            qh = q[:, hd * c.head_dim : (hd + 1) * c.head_dim]
            kh = k[:, kv * c.head_dim : (kv + 1) * c.head_dim]
            vh = v[:, kv * c.head_dim : (kv + 1) * c.head_dim]
            if c.qk_norm:
                qh = norm(qh, w[p + "self_attn.q_norm.weight"])
                kh = norm(kh, w[p + "self_attn.k_norm.weight"])
            qh, kh = rope(qh), rope(kh)
            o = np.zeros((T, c.head_dim))
            for t in range(T):
                lo = 0 if c.sliding_window is None else max(0, t - c.sliding_window + 1)
                s = kh[lo : t + 1] @ qh[t] / math.sqrt(c.head_dim)
                e = np.exp(s - s.max())
                o[t] = (e / e.sum()) @ vh[lo : t + 1]
            heads_out.append(o)
        h = h + lin(np.concatenate(heads_out, axis=1), p + "self_attn.o_proj", c.o_bias)
        x = norm(h, w[p + "post_attention_layernorm.weight"])
        g = lin(x, p + "mlp.gate_proj", False)
        h = h + lin(g / (1 + np.exp(-g)) * lin(x, p + "mlp.up_proj", False), p + "mlp.down_proj", False)
    h = norm(h, w["model.norm.weight"])
    return h @ (w["model.embed_tokens.weight"] if c.tied else w["lm_head.weight"]).T


def rel_l2(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# ---------------------------------------------------------------------------------------------


def round_sig(x):
    return float("%.*g" % (SIGNIFICANT_DIGITS, x))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def reference_for_folder(folder, check):
    name = os.path.basename(os.path.normpath(folder))
    with open(os.path.join(folder, "config.json")) as f:
        raw_config = json.load(f)
    with open(os.path.join(folder, "tokenizer.json")) as f:
        tokenizer_json = json.load(f)
    config = Config(raw_config)
    weights = read_safetensors(os.path.join(folder, "model.safetensors"))
    model = TorchModel(config, weights)

    rows = [bpe_encode(tokenizer_json, t) for t in TEXTS]
    labels = [list(rows[0]), [IGNORE_INDEX, IGNORE_INDEX] + rows[1][2:]]
    with torch.no_grad():
        logits = [model.logits(torch.tensor([r], dtype=torch.int64)) for r in rows]
        losses = [float(causal_lm_loss(lg, torch.tensor([lb]))) for lg, lb in zip(logits, labels)]
        explicit = [float(causal_lm_loss_explicit(lg, torch.tensor([lb]))) for lg, lb in zip(logits, labels)]
        for a, b in zip(losses, explicit):
            assert abs(a - b) <= 1e-6 * abs(b), "loss check failed for %s: %r vs %r" % (name, a, b)
        tokens, margins = greedy(model, torch.tensor([rows[0]], dtype=torch.int64), NEW_TOKENS)

    checks = {"loss_explicit_max_rel_diff": max(abs(a - b) / abs(b) for a, b in zip(losses, explicit))}
    if check:
        ref64 = [numpy_logits(config, weights, r) for r in rows]
        checks["numpy_f64_logits_rel_l2"] = max(rel_l2(lg[0].numpy(), r) for lg, r in zip(logits, ref64))
        assert checks["numpy_f64_logits_rel_l2"] < 1e-5, "numpy float64 forward disagrees for %s: %g" % (name, checks["numpy_f64_logits_rel_l2"])

    row0 = logits[0][0].numpy()  # (T, V)
    fixture = {
        "model": name,
        "architecture": config.architecture,
        "torch_dtype": raw_config.get("torch_dtype"),
        "generator": "scripts/tiny/models.ts",
        "reference": "scripts/torch_reference.py (torch %s, float32)" % torch.__version__,
        "files": {f: sha256(os.path.join(folder, f)) for f in sorted(os.listdir(folder))},
        "texts": TEXTS,
        "input_ids": rows,
        "labels": labels,
        "loss": losses,
        "logits_row0": [[round_sig(x) for x in row] for row in row0.tolist()],
        "greedy_new_tokens": tokens,
        "greedy_margins": [round_sig(m) for m in margins],
    }
    stats = {
        "logits_std": float(row0.std()),
        "min_greedy_margin": min(margins),
        **checks,
    }
    return fixture, stats


def self_check_tokenizer(folder):
    # Every id of a longer text must be a vocabulary id, and the ids must decode back to the text.
    with open(os.path.join(folder, "tokenizer.json")) as f:
        tj = json.load(f)
    text = "A language model reads text as a list of tokens, one token at a time: 42 of them!"
    inverse = {v: k for k, v in tj["model"]["vocab"].items()}
    chars = bytes_to_unicode()
    back = {c: b for b, c in chars.items()}
    ids = bpe_encode(tj, text)
    decoded = bytes(back[ch] for i in ids for ch in inverse[i]).decode("utf-8")
    assert decoded == text, "BPE round trip failed: %r" % decoded
    assert len(ids) < len(text), "BPE applied no merges"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models_dir", help="folder of model folders (each with config.json)")
    ap.add_argument("--out", default="fixtures/models", help="where the fixtures go (default fixtures/models)")
    ap.add_argument("--check", action="store_true", help="also run the float64 numpy forward and tokenizer self-checks")
    args = ap.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(1)
    folders = sorted(
        os.path.join(args.models_dir, d) for d in os.listdir(args.models_dir) if os.path.isfile(os.path.join(args.models_dir, d, "config.json"))
    )
    if not folders:
        sys.exit("no model folders (with config.json) under %s" % args.models_dir)
    os.makedirs(args.out, exist_ok=True)
    for folder in folders:
        if args.check:
            self_check_tokenizer(folder)
        fixture, stats = reference_for_folder(folder, args.check)
        path = os.path.join(args.out, fixture["model"] + ".json")
        with open(path, "w") as f:
            json.dump(fixture, f, separators=(",", ":"))
            f.write("\n")
        print(
            "%-20s ids %s  loss %s  logits std %.3f  min greedy margin %.4f  %s  -> %s (%d bytes)"
            % (
                fixture["model"],
                [len(r) for r in fixture["input_ids"]],
                ["%.6f" % l for l in fixture["loss"]],
                stats["logits_std"],
                stats["min_greedy_margin"],
                " ".join("%s %.2e" % (k, v) for k, v in stats.items() if k.endswith("diff") or k.endswith("l2")),
                path,
                os.path.getsize(path),
            )
        )


if __name__ == "__main__":
    main()
