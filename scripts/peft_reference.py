#!/usr/bin/python3
"""PyTorch reference for LoRA adapters with Hugging Face PEFT's semantics.

Run with Debian's python3-torch:
    /usr/bin/python3 scripts/peft_reference.py MODELS_DIR [--out fixtures/lora] [--write-adapters] [--check]

MODELS_DIR holds the tiny model folders of scripts/tiny/write-models.ts. For every adapter in ADAPTERS
this script reads the PEFT adapter folder OUT/<name>/ (adapter_config.json + adapter_model.safetensors)
and the model folder it was made for, runs the causal-LM loss of two fixed texts through the model with
the adapter, backpropagates once, and writes OUT/<name>.json: the token ids and labels, the loss, the
gradient of every lora_A and lora_B tensor, and the SHA-256 of the model and adapter files.
--write-adapters first (re)writes the adapter folders from fixed seeds: deterministic, nonzero A and B.

LoRA follows peft/tuners/lora (layer.py, config.py) without importing PEFT: for every module that
target_modules selects (a list entry matches the module path or a ".entry" suffix), lora_A [r, in]
and lora_B [out, r] add `lora_B(lora_A(dropout(x))) * scaling` to the base layer's output (bias
included), scaling = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora, with r and alpha taken
from rank_pattern / alpha_pattern for the modules they match (PEFT's get_pattern_key). The model runs
in eval mode, so lora_dropout is the identity: the fixture is deterministic. The base model is
scripts/torch_reference.py's from-scratch float32 transformers re-implementation; safetensors files
are read and written with numpy (no peft, transformers or safetensors modules).

--check also reruns everything in float64 (but for the RoPE angles and the attention softmax, which
transformers computes in float32) and compares, and checks that the adapter gives the same logits as
the base model with merged weights W + scaling * B @ A.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import (  # noqa: E402
    IGNORE_INDEX,
    TEXTS,
    Config,
    TorchModel,
    bpe_encode,
    causal_mask,
    read_safetensors,
    rel_l2,
    rms_norm,
    rotary_cos_sin,
    round_sig,
    sha256,
)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PREFIX = "base_model.model."

# The fixture adapters: one Llama (every projection, plain scaling, stored F32) and one Qwen2 with
# q/k/v biases (rsLoRA, a rank_pattern and an alpha_pattern, stored BF16). The configs carry the keys
# a PEFT 0.17 save writes for them, peft_version included.
ADAPTERS = [
    {
        "name": "llama3-untied-f32-lora",
        "model": "llama3-untied-f32",
        "seed": 31,
        "dtype": "F32",
        "config": {
            "r": 4,
            "lora_alpha": 8,
            "lora_dropout": 0.05,
            "use_rslora": False,
            "target_modules": ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"],
            "rank_pattern": {},
            "alpha_pattern": {},
        },
    },
    {
        "name": "qwen2-tied-f32-rslora",
        "model": "qwen2-tied-f32",
        "seed": 32,
        "dtype": "BF16",
        "config": {
            "r": 8,
            "lora_alpha": 16,
            "lora_dropout": 0.0,
            "use_rslora": True,
            "target_modules": ["down_proj", "k_proj", "q_proj", "v_proj"],
            "rank_pattern": {"down_proj": 4},
            "alpha_pattern": {"v_proj": 32},
        },
    },
]

LINEAR_MODULES = [
    ("self_attn", "q_proj"),
    ("self_attn", "k_proj"),
    ("self_attn", "v_proj"),
    ("self_attn", "o_proj"),
    ("mlp", "gate_proj"),
    ("mlp", "up_proj"),
    ("mlp", "down_proj"),
]


def peft_config(spec, base_model):
    """adapter_config.json as PEFT 0.17 saves a causal-LM LoRA adapter (sorted keys, indent 2)."""
    c = spec["config"]
    return {
        "alpha_pattern": c["alpha_pattern"],
        "auto_mapping": None,
        "base_model_name_or_path": base_model,
        "bias": "none",
        "corda_config": None,
        "eva_config": None,
        "exclude_modules": None,
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layer_replication": None,
        "layers_pattern": None,
        "layers_to_transform": None,
        "loftq_config": {},
        "lora_alpha": c["lora_alpha"],
        "lora_bias": False,
        "lora_dropout": c["lora_dropout"],
        "megatron_config": None,
        "megatron_core": "megatron.core",
        "modules_to_save": None,
        "peft_type": "LORA",
        "peft_version": "0.17.1",
        "qalora_group_size": 16,
        "r": c["r"],
        "rank_pattern": c["rank_pattern"],
        "revision": None,
        "target_modules": c["target_modules"],
        "target_parameters": None,
        "task_type": "CAUSAL_LM",
        "trainable_token_indices": None,
        "use_dora": False,
        "use_qalora": False,
        "use_rslora": c["use_rslora"],
    }


# ---------------------------------------------------------------------------------------------
# PEFT's module selection and per-module rank, alpha and scaling


def module_shapes(config):
    """Every linear module path of the decoder with its (out, in), layer by layer."""
    q = config.heads * config.head_dim
    kv = config.kv_heads * config.head_dim
    shapes = {
        "q_proj": (q, config.hidden),
        "k_proj": (kv, config.hidden),
        "v_proj": (kv, config.hidden),
        "o_proj": (config.hidden, q),
        "gate_proj": (config.intermediate, config.hidden),
        "up_proj": (config.intermediate, config.hidden),
        "down_proj": (config.hidden, config.intermediate),
    }
    out = []
    for layer in range(config.layers):
        for parent, name in LINEAR_MODULES:
            out.append(("model.layers.%d.%s.%s" % (layer, parent, name), shapes[name]))
    return out


def target_matches(target_modules, path):
    # check_target_module_exists for a list: the whole name, or the name ending in "." + entry.
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, path) is not None
    return any(path == t or path.endswith("." + t) for t in target_modules)


def pattern_value(pattern, path, default):
    # get_pattern_key: the first key such that the path is the key or ends with "." + key (as a regex).
    for key, value in pattern.items():
        if re.match(r"(.*\.)?(%s)$" % key, path):
            return value
    return default


def lora_modules(adapter_config, config):
    """{path: (r, alpha, scaling, out, in)} for every adapted module."""
    out = {}
    for path, (n_out, n_in) in module_shapes(config):
        if not target_matches(adapter_config["target_modules"], path):
            continue
        r = pattern_value(adapter_config.get("rank_pattern") or {}, path, adapter_config["r"])
        alpha = pattern_value(adapter_config.get("alpha_pattern") or {}, path, adapter_config["lora_alpha"])
        scaling = alpha / math.sqrt(r) if adapter_config.get("use_rslora", False) else alpha / r
        out[path] = (r, alpha, scaling, n_out, n_in)
    return out


# ---------------------------------------------------------------------------------------------
# safetensors writing (8-byte little-endian header length, JSON header padded with spaces, data)


def f32_to_bf16_bits(a):
    """Round-to-nearest-even float32 -> bfloat16 bit patterns (uint16)."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def write_safetensors(path, tensors, dtype):
    """tensors: list of (name, float32 array); every tensor stored as `dtype` (F32 or BF16)."""
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for name, arr in tensors:
        raw = np.ascontiguousarray(arr, dtype="<f4").tobytes() if dtype == "F32" else f32_to_bf16_bits(arr).astype("<u2").tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def write_adapter(spec, model_folder, out_dir):
    """A deterministic nonzero adapter: A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's kaiming init) and
    B ~ N(0, (0.5 / (scaling * sqrt(r)))^2), so that scaling * B @ A is a moderate change of W."""
    with open(os.path.join(model_folder, "config.json")) as f:
        config = Config(json.load(f))
    adapter_config = peft_config(spec, spec["model"])
    rng = np.random.RandomState(spec["seed"])
    tensors = []
    for path, (r, _alpha, scaling, n_out, n_in) in lora_modules(adapter_config, config).items():
        bound = 1.0 / math.sqrt(n_in)
        a = rng.uniform(-bound, bound, size=(r, n_in)).astype(np.float32)
        b = (rng.standard_normal(size=(n_out, r)) * (0.5 / (scaling * math.sqrt(r)))).astype(np.float32)
        tensors.append((PREFIX + path + ".lora_A.weight", a))
        tensors.append((PREFIX + path + ".lora_B.weight", b))
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, ADAPTER_CONFIG), "w") as f:
        json.dump(adapter_config, f, indent=2, sort_keys=True)
    write_safetensors(os.path.join(out_dir, ADAPTER_WEIGHTS), tensors, spec["dtype"])


# ---------------------------------------------------------------------------------------------
# the model with LoRA


class LoraTorchModel(TorchModel):
    """TorchModel whose linear layers add PEFT's LoRA term where an adapter module is given."""

    def __init__(self, config, weights, lora, dropout):
        super().__init__(config, weights)
        self.lora = lora  # {path: (A [r, in], B [out, r], scaling)}
        self.dropout = torch.nn.Dropout(dropout)
        self.dropout.eval()

    def linear(self, x, name, bias):
        result = super().linear(x, name, bias)
        if name in self.lora:
            a, b, scaling = self.lora[name]
            # peft/tuners/lora/layer.py Linear.forward: result + lora_B(lora_A(dropout(x))) * scaling
            result = result + F.linear(F.linear(self.dropout(x), a), b) * scaling
        return result

    def logits(self, ids):
        """TorchModel.logits in the weights' dtype (float64 for --check; the same values in float32)."""
        c = self.c
        T = ids.shape[1]
        h = F.embedding(ids, self.w["model.embed_tokens.weight"])  # (B, T, C)
        cos, sin = rotary_cos_sin(self.inv_freq.to(h.dtype), T)
        mask = causal_mask(T, c.sliding_window).to(h.dtype)
        for layer in range(c.layers):
            p = "model.layers.%d." % layer
            h = h + self.attention(rms_norm(h, self.w[p + "input_layernorm.weight"], c.eps), p + "self_attn.", cos, sin, mask)
            h = h + self.mlp(rms_norm(h, self.w[p + "post_attention_layernorm.weight"], c.eps), p + "mlp.")
        h = rms_norm(h, self.w["model.norm.weight"], c.eps)
        head = self.w["model.embed_tokens.weight"] if c.tied else self.w["lm_head.weight"]
        return F.linear(h, head)  # (B, T, V)


def read_adapter(folder):
    with open(os.path.join(folder, ADAPTER_CONFIG)) as f:
        adapter_config = json.load(f)
    tensors = read_safetensors(os.path.join(folder, ADAPTER_WEIGHTS))
    return adapter_config, tensors


def loss_of_rows(model, rows, labels):
    """The causal-LM loss of several rows taken together: summed cross-entropy of every counted
    next-token target over the count (transformers' ForCausalLMLoss with padding, row by row)."""
    total = 0.0
    count = 0
    per_row = []
    for ids, lab in zip(rows, labels):
        logits = model.logits(torch.tensor([ids], dtype=torch.int64))  # (1, T, V)
        target = torch.tensor(lab[1:] + [IGNORE_INDEX], dtype=torch.int64)
        s = F.cross_entropy(logits[0], target, ignore_index=IGNORE_INDEX, reduction="sum")
        n = int((target != IGNORE_INDEX).sum())
        per_row.append(float(s) / n)
        total = total + s
        count += n
    return total / count, count, per_row


def run(config, weights, adapter_config, adapter_tensors, rows, labels, dtype):
    modules = lora_modules(adapter_config, config)
    found = {k[len(PREFIX) :] if k.startswith(PREFIX) else k for k in adapter_tensors}
    want = {p + s for p in modules for s in (".lora_A.weight", ".lora_B.weight")}
    assert found == want, "adapter tensors %s do not match the config's modules %s" % (sorted(found ^ want), sorted(modules))
    w = {k: v.to(dtype) for k, v in weights.items()}
    params = {}
    lora = {}
    for path, (r, _alpha, scaling, n_out, n_in) in modules.items():
        a = adapter_tensors[PREFIX + path + ".lora_A.weight"].to(dtype).clone().requires_grad_(True)
        b = adapter_tensors[PREFIX + path + ".lora_B.weight"].to(dtype).clone().requires_grad_(True)
        assert tuple(a.shape) == (r, n_in) and tuple(b.shape) == (n_out, r), path
        params[path] = (a, b)
        lora[path] = (a, b, scaling)
    model = LoraTorchModel(config, w, lora, adapter_config.get("lora_dropout", 0.0))
    loss, count, per_row = loss_of_rows(model, rows, labels)
    loss.backward()
    grads = {}
    for path, (a, b) in params.items():
        grads[PREFIX + path + ".lora_A.weight"] = a.grad.detach().clone()
        grads[PREFIX + path + ".lora_B.weight"] = b.grad.detach().clone()
    return float(loss), count, per_row, grads, modules


def merged_logits_check(config, weights, adapter_config, adapter_tensors, ids):
    """relL2 between the adapter's logits and the base model's with W + scaling * B @ A (float64 weights),
    and between the adapter's logits and the base model's (how much the adapter changes them)."""
    modules = lora_modules(adapter_config, config)
    w = {k: v.double() for k, v in weights.items()}
    lora = {}
    merged = dict(w)
    for path, (_r, _alpha, scaling, _o, _i) in modules.items():
        a = adapter_tensors[PREFIX + path + ".lora_A.weight"].double()
        b = adapter_tensors[PREFIX + path + ".lora_B.weight"].double()
        lora[path] = (a, b, scaling)
        merged[path + ".weight"] = w[path + ".weight"] + scaling * (b @ a)
    x = torch.tensor([ids], dtype=torch.int64)
    with torch.no_grad():
        with_adapter = LoraTorchModel(config, w, lora, 0.0).logits(x)
        with_merged = TorchModel(config, merged).logits(x)
        base = TorchModel(config, w).logits(x)
    return rel_l2(with_adapter.numpy(), with_merged.numpy()), rel_l2(with_adapter.numpy(), base.numpy())


def reference_for_adapter(spec, models_dir, out_dir, check):
    model_folder = os.path.join(models_dir, spec["model"])
    adapter_folder = os.path.join(out_dir, spec["name"])
    with open(os.path.join(model_folder, "config.json")) as f:
        config = Config(json.load(f))
    with open(os.path.join(model_folder, "tokenizer.json")) as f:
        tokenizer_json = json.load(f)
    weights = read_safetensors(os.path.join(model_folder, "model.safetensors"))
    adapter_config, adapter_tensors = read_adapter(adapter_folder)

    rows = [bpe_encode(tokenizer_json, t) for t in TEXTS]
    labels = [list(rows[0]), [IGNORE_INDEX, IGNORE_INDEX] + rows[1][2:]]
    loss, count, per_row, grads, modules = run(config, weights, adapter_config, adapter_tensors, rows, labels, torch.float32)

    stats = {}
    if check:
        loss64, _, _, grads64, _ = run(config, weights, adapter_config, adapter_tensors, rows, labels, torch.float64)
        stats["f64_loss_rel_diff"] = abs(loss - loss64) / abs(loss64)
        stats["f64_grad_max_rel_l2"] = max(rel_l2(grads[k].numpy(), grads64[k].numpy()) for k in grads)
        assert stats["f64_loss_rel_diff"] < 1e-5 and stats["f64_grad_max_rel_l2"] < 1e-4, "float64 rerun disagrees: %r" % stats
        stats["merged_logits_rel_l2"], stats["adapter_effect_rel_l2"] = merged_logits_check(config, weights, adapter_config, adapter_tensors, rows[0])
        assert stats["merged_logits_rel_l2"] < 1e-6, "merged weights disagree with the adapter: %r" % stats
        assert stats["adapter_effect_rel_l2"] > 1e-2, "the adapter barely changes the logits: %r" % stats

    fixture = {
        "name": spec["name"],
        "model": spec["model"],
        "reference": "scripts/peft_reference.py (torch %s, float32, eval mode: lora_dropout off)" % torch.__version__,
        "model_files": {f: sha256(os.path.join(model_folder, f)) for f in sorted(os.listdir(model_folder))},
        "adapter_files": {f: sha256(os.path.join(adapter_folder, f)) for f in sorted(os.listdir(adapter_folder))},
        "scaling": {p: m[2] for p, m in modules.items()},
        "input_ids": rows,
        "labels": labels,
        "tokens": count,
        "loss": loss,
        "loss_per_row": per_row,
        "grads": {k: {"shape": list(v.shape), "values": [round_sig(x) for x in v.flatten().tolist()]} for k, v in sorted(grads.items())},
    }
    return fixture, stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models_dir", help="folder of the tiny model folders (scripts/tiny/write-models.ts)")
    ap.add_argument("--out", default="fixtures/lora", help="where the adapter folders are and the fixtures go (default fixtures/lora)")
    ap.add_argument("--write-adapters", action="store_true", help="write the deterministic adapter folders first")
    ap.add_argument("--check", action="store_true", help="also rerun in float64 and check merged weights")
    args = ap.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    for spec in ADAPTERS:
        model_folder = os.path.join(args.models_dir, spec["model"])
        if not os.path.isfile(os.path.join(model_folder, "config.json")):
            sys.exit("no model folder %s (write it with: npx tsx scripts/tiny/write-models.ts %s)" % (model_folder, args.models_dir))
        if args.write_adapters:
            write_adapter(spec, model_folder, os.path.join(args.out, spec["name"]))
        fixture, stats = reference_for_adapter(spec, args.models_dir, args.out, args.check)
        path = os.path.join(args.out, spec["name"] + ".json")
        with open(path, "w") as f:
            json.dump(fixture, f, separators=(",", ":"))
            f.write("\n")
        print(
            "%-24s modules %d  tokens %d  loss %.6f  %s  -> %s (%d bytes)"
            % (
                spec["name"],
                len(fixture["scaling"]),
                fixture["tokens"],
                fixture["loss"],
                " ".join("%s %.2e" % (k, v) for k, v in stats.items()),
                path,
                os.path.getsize(path),
            )
        )


if __name__ == "__main__":
    main()
