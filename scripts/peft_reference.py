#!/usr/bin/python3
"""PyTorch reference for LoRA (and IA3, DoRA, prompt and prefix tuning) adapters with Hugging Face PEFT's semantics,
and for Whetstone's bottleneck adapters.

Run with Debian's python3-torch:
    /usr/bin/python3 scripts/peft_reference.py MODELS_DIR [--out fixtures/lora] [--write-adapters] [--check] [--methods lora,ia3,prefix-projection,full]

IA3 (IA3_ADAPTERS, fixtures/ia3/) follows peft/tuners/ia3: each target module's ia3_l scales the base
layer's output ([out, 1], bias included) or, for feedforward_modules, its input ([1, in]); the fixture
holds the loss and the gradient of every ia3_l, and --check also compares PEFT's merge (W * ia3_l).
DoRA (DORA_ADAPTERS, fixtures/dora/) follows peft/tuners/lora/dora.py: lora_magnitude_vector m [out]
rescales the LoRA-updated weight by m / ||W + scaling * B @ A|| (the norm detached).
Prompt tuning (PROMPT_ADAPTERS, fixtures/prompt/) feeds cat(prompt_embeddings, embed(ids)) with the
labels prefixed by -100 per virtual token and positions counted from 0 over the whole row.
Prefix tuning (PREFIX_ADAPTERS, fixtures/prefix/) puts per-layer keys and values from prompt_embeddings
[nvt, L * 2 * Hkv * D] before the tokens' (no RoPE on them; the tokens' positions start at nvt).
Prefix tuning with prefix_projection (PREFIX_PROJECTION_ADAPTERS, fixtures/prefix/; --methods
prefix-projection) computes that table with PEFT's PrefixEncoder (nn.Embedding, nn.Linear, nn.Tanh,
nn.Linear); the folder also holds the encoder's weights (prefix_encoder.safetensors), and the fixture
the gradient of each of them.
Full fine-tuning (FULL_MODELS, fixtures/full/; --methods full) trains every weight of the model; the
fixture holds the loss and the gradients of a sample of weights (full_sample).
Bottleneck adapters (BOTTLENECK_ADAPTERS, fixtures/adapter/; not a PEFT method) add
adapter_up(silu(adapter_down(y))) to the outputs of o_proj and down_proj.

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
    apply_rotary_pos_emb,
    bpe_encode,
    causal_mask,
    read_safetensors,
    rel_l2,
    repeat_kv,
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
    weights = os.path.join(folder, ADAPTER_WEIGHTS)
    if not os.path.exists(weights):
        weights = os.path.join(folder, "pytorch_adapter.safetensors")  # bottleneck adapters
    tensors = read_safetensors(weights)
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


# ---------------------------------------------------------------------------------------------
# IA3 (peft/tuners/ia3): one ia3_l vector per target module, [out, 1] scaling the base layer's output
# (bias included) or, for feedforward_modules, [1, in] scaling its input. Written to fixtures/ia3/.

IA3_ADAPTERS = [
    {
        # PEFT's Llama defaults: k_proj and v_proj scaled at the output, down_proj at the input.
        "name": "llama3-untied-f32-ia3",
        "model": "llama3-untied-f32",
        "seed": 41,
        "dtype": "F32",
        "config": {"target_modules": ["down_proj", "k_proj", "v_proj"], "feedforward_modules": ["down_proj"]},
    },
    {
        # Qwen2's k/v biases are scaled with the output; up_proj is a second feed-forward module.
        "name": "qwen2-tied-f32-ia3",
        "model": "qwen2-tied-f32",
        "seed": 42,
        "dtype": "BF16",
        "config": {"target_modules": ["down_proj", "k_proj", "q_proj", "up_proj", "v_proj"], "feedforward_modules": ["down_proj", "up_proj"]},
    },
]


def ia3_peft_config(spec, base_model):
    """adapter_config.json as PEFT 0.17 saves a causal-LM IA3 adapter (sorted keys, indent 2)."""
    c = spec["config"]
    return {
        "auto_mapping": None,
        "base_model_name_or_path": base_model,
        "exclude_modules": None,
        "fan_in_fan_out": False,
        "feedforward_modules": c["feedforward_modules"],
        "inference_mode": True,
        "init_ia3_weights": True,
        "modules_to_save": None,
        "peft_type": "IA3",
        "peft_version": "0.17.1",
        "revision": None,
        "target_modules": c["target_modules"],
        "task_type": "CAUSAL_LM",
    }


def ia3_modules(adapter_config, config):
    """{path: (feedforward, shape)}: the list rules of check_target_module_exists, and
    _check_target_module_feedforward's (a list entry matches when the path ends with it)."""
    out = {}
    for path, (n_out, n_in) in module_shapes(config):
        if not target_matches(adapter_config["target_modules"], path):
            continue
        ff_modules = adapter_config["feedforward_modules"]
        ff = re.fullmatch(ff_modules, path) is not None if isinstance(ff_modules, str) else any(path.endswith(k) for k in ff_modules)
        out[path] = (ff, (1, n_in) if ff else (n_out, 1))
    return out


def write_ia3_adapter(spec, model_folder, out_dir):
    """Deterministic vectors around 1 (l ~ 1 + 0.5 N(0, 1)), so every module changes the model."""
    with open(os.path.join(model_folder, "config.json")) as f:
        config = Config(json.load(f))
    adapter_config = ia3_peft_config(spec, spec["model"])
    rng = np.random.RandomState(spec["seed"])
    tensors = []
    for path, (_ff, shape) in ia3_modules(adapter_config, config).items():
        tensors.append((PREFIX + path + ".ia3_l", (1.0 + 0.5 * rng.standard_normal(size=shape)).astype(np.float32)))
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, ADAPTER_CONFIG), "w") as f:
        json.dump(adapter_config, f, indent=2, sort_keys=True)
    write_safetensors(os.path.join(out_dir, ADAPTER_WEIGHTS), tensors, spec["dtype"])


class Ia3TorchModel(LoraTorchModel):
    """TorchModel whose target linear layers apply PEFT's IA3 Linear.forward."""

    def __init__(self, config, weights, ia3):
        super().__init__(config, weights, {}, 0.0)
        self.ia3 = ia3  # {path: (ia3_l, feedforward)}

    def linear(self, x, name, bias):
        if name not in self.ia3:
            return super().linear(x, name, bias)
        l, ff = self.ia3[name]
        if ff:
            return super().linear(x * l.flatten(), name, bias)  # base_layer(x * ia3_l)
        return super().linear(x, name, bias) * l.flatten()  # base_layer(x) * ia3_l


def run_ia3(config, weights, adapter_config, adapter_tensors, rows, labels, dtype):
    modules = ia3_modules(adapter_config, config)
    found = {k[len(PREFIX) :] for k in adapter_tensors}
    assert found == {p + ".ia3_l" for p in modules}, "adapter tensors do not match the config's modules"
    w = {k: v.to(dtype) for k, v in weights.items()}
    params = {}
    for path, (ff, shape) in modules.items():
        l = adapter_tensors[PREFIX + path + ".ia3_l"].to(dtype).clone().requires_grad_(True)
        assert tuple(l.shape) == shape, path
        params[path] = (l, ff)
    model = Ia3TorchModel(config, w, params)
    loss, count, per_row = loss_of_rows(model, rows, labels)
    loss.backward()
    grads = {PREFIX + p + ".ia3_l": l.grad.detach().clone() for p, (l, _ff) in params.items()}
    return float(loss), count, per_row, grads, modules


def ia3_merged_check(config, weights, adapter_config, adapter_tensors, ids):
    """relL2 between the IA3 model's logits and the base model's with PEFT's merge (W * ia3_l, and the
    bias * ia3_l for output-scaled modules), and between the IA3 model's and the base model's logits."""
    modules = ia3_modules(adapter_config, config)
    w = {k: v.double() for k, v in weights.items()}
    merged = dict(w)
    ia3 = {}
    for path, (ff, _shape) in modules.items():
        l = adapter_tensors[PREFIX + path + ".ia3_l"].double()
        ia3[path] = (l, ff)
        merged[path + ".weight"] = w[path + ".weight"] * l  # [out, in] * [out, 1] or [1, in]
        if not ff and path + ".bias" in w:
            merged[path + ".bias"] = w[path + ".bias"] * l.flatten()
    x = torch.tensor([ids], dtype=torch.int64)
    with torch.no_grad():
        adapted = Ia3TorchModel(config, w, ia3).logits(x)
        with_merged = TorchModel(config, merged).logits(x)
        base = TorchModel(config, w).logits(x)
    return rel_l2(adapted.numpy(), with_merged.numpy()), rel_l2(adapted.numpy(), base.numpy())


def ia3_reference(spec, models_dir, out_dir, check):
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
    loss, count, per_row, grads, modules = run_ia3(config, weights, adapter_config, adapter_tensors, rows, labels, torch.float32)
    stats = {}
    if check:
        loss64, _, _, grads64, _ = run_ia3(config, weights, adapter_config, adapter_tensors, rows, labels, torch.float64)
        stats["f64_loss_rel_diff"] = abs(loss - loss64) / abs(loss64)
        stats["f64_grad_max_rel_l2"] = max(rel_l2(grads[k].numpy(), grads64[k].numpy()) for k in grads)
        assert stats["f64_loss_rel_diff"] < 1e-5 and stats["f64_grad_max_rel_l2"] < 1e-4, "float64 rerun disagrees: %r" % stats
        stats["merged_logits_rel_l2"], stats["adapter_effect_rel_l2"] = ia3_merged_check(config, weights, adapter_config, adapter_tensors, rows[0])
        assert stats["merged_logits_rel_l2"] < 1e-6, "merged weights disagree with the adapter: %r" % stats
        assert stats["adapter_effect_rel_l2"] > 1e-2, "the adapter barely changes the logits: %r" % stats
    fixture = {
        "name": spec["name"],
        "model": spec["model"],
        "reference": "scripts/peft_reference.py (torch %s, float32, PEFT IA3 semantics)" % torch.__version__,
        "model_files": {f: sha256(os.path.join(model_folder, f)) for f in sorted(os.listdir(model_folder))},
        "adapter_files": {f: sha256(os.path.join(adapter_folder, f)) for f in sorted(os.listdir(adapter_folder))},
        "feedforward": {p: m[0] for p, m in modules.items()},
        "input_ids": rows,
        "labels": labels,
        "tokens": count,
        "loss": loss,
        "loss_per_row": per_row,
        "grads": {k: {"shape": list(v.shape), "values": [round_sig(x) for x in v.flatten().tolist()]} for k, v in sorted(grads.items())},
    }
    return fixture, stats


# ---------------------------------------------------------------------------------------------
# DoRA (peft/tuners/lora/dora.py DoraLinearLayer, LoRA with use_dora): per module lora_A, lora_B and
# lora_magnitude_vector m [out]; with the row norm n = ||W + scaling * B @ A|| computed from a
# detached B @ A and itself detached, c = m / n and
#   result = base(x) + (c - 1) * (base(x) - bias) + c * lora_B(lora_A(x)) * scaling.
# Written to fixtures/dora/.

DORA_ADAPTERS = [
    {
        "name": "llama3-untied-f32-dora",
        "model": "llama3-untied-f32",
        "seed": 51,
        "dtype": "F32",
        "config": {
            "r": 4,
            "lora_alpha": 8,
            "lora_dropout": 0.0,
            "use_rslora": False,
            "target_modules": ["down_proj", "o_proj", "q_proj", "v_proj"],
            "rank_pattern": {},
            "alpha_pattern": {},
        },
    },
    {
        "name": "qwen2-tied-f32-dora",
        "model": "qwen2-tied-f32",
        "seed": 52,
        "dtype": "F32",
        "config": {
            "r": 8,
            "lora_alpha": 16,
            "lora_dropout": 0.0,
            "use_rslora": True,
            "target_modules": ["gate_proj", "k_proj", "q_proj", "v_proj"],
            "rank_pattern": {},
            "alpha_pattern": {},
        },
    },
]


def write_dora_adapter(spec, model_folder, out_dir):
    """LoRA factors as write_adapter draws them, and m = ||W + scaling * B @ A|| * (1 + 0.3 N(0, 1))
    so that the magnitudes change the model too."""
    with open(os.path.join(model_folder, "config.json")) as f:
        config = Config(json.load(f))
    weights = read_safetensors(os.path.join(model_folder, "model.safetensors"))
    adapter_config = dict(peft_config(spec, spec["model"]), use_dora=True)
    rng = np.random.RandomState(spec["seed"])
    tensors = []
    for path, (r, _alpha, scaling, n_out, n_in) in lora_modules(adapter_config, config).items():
        bound = 1.0 / math.sqrt(n_in)
        a = rng.uniform(-bound, bound, size=(r, n_in)).astype(np.float32)
        b = (rng.standard_normal(size=(n_out, r)) * (0.5 / (scaling * math.sqrt(r)))).astype(np.float32)
        w = weights[path + ".weight"].double().numpy()
        norm = np.linalg.norm(w + scaling * (b.astype(np.float64) @ a.astype(np.float64)), axis=1)
        m = (norm * (1.0 + 0.3 * rng.standard_normal(size=n_out))).astype(np.float32)
        tensors.append((PREFIX + path + ".lora_A.weight", a))
        tensors.append((PREFIX + path + ".lora_B.weight", b))
        tensors.append((PREFIX + path + ".lora_magnitude_vector", m))
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, ADAPTER_CONFIG), "w") as f:
        json.dump(adapter_config, f, indent=2, sort_keys=True)
    write_safetensors(os.path.join(out_dir, ADAPTER_WEIGHTS), tensors, spec["dtype"])


class DoraTorchModel(LoraTorchModel):
    """TorchModel whose target linear layers apply PEFT's LoRA Linear.forward with DoRA (eval mode)."""

    def __init__(self, config, weights, dora):
        super().__init__(config, weights, {}, 0.0)
        self.dora = dora  # {path: (A, B, m, scaling)}

    def linear(self, x, name, bias):
        result = super().linear(x, name, bias)
        if name not in self.dora:
            return result
        a, b, m, scaling = self.dora[name]
        weight = self.w[name + ".weight"]
        lora_weight = b @ a
        weight_norm = torch.linalg.norm(weight + scaling * lora_weight.detach(), dim=1).detach()
        mag_norm_scale = (m / weight_norm).view(1, -1)
        base_result = result - self.w[name + ".bias"] if bias else result
        return result + (mag_norm_scale - 1) * base_result + mag_norm_scale * F.linear(F.linear(x, a), b) * scaling


def run_dora(config, weights, adapter_config, adapter_tensors, rows, labels, dtype):
    modules = lora_modules(adapter_config, config)
    suffixes = (".lora_A.weight", ".lora_B.weight", ".lora_magnitude_vector")
    assert {k[len(PREFIX) :] for k in adapter_tensors} == {p + x for p in modules for x in suffixes}, "adapter tensors do not match the config"
    w = {k: v.to(dtype) for k, v in weights.items()}
    dora = {}
    for path, (r, _alpha, scaling, n_out, n_in) in modules.items():
        t = [adapter_tensors[PREFIX + path + x].to(dtype).clone().requires_grad_(True) for x in suffixes]
        assert tuple(t[0].shape) == (r, n_in) and tuple(t[1].shape) == (n_out, r) and tuple(t[2].shape) == (n_out,), path
        dora[path] = (t[0], t[1], t[2], scaling)
    model = DoraTorchModel(config, w, dora)
    loss, count, per_row = loss_of_rows(model, rows, labels)
    loss.backward()
    grads = {}
    for path, (a, b, m, _s) in dora.items():
        for x, t in zip(suffixes, (a, b, m)):
            grads[PREFIX + path + x] = t.grad.detach().clone()
    return float(loss), count, per_row, grads, modules


def dora_merged_check(config, weights, adapter_config, adapter_tensors, ids):
    """relL2 between the DoRA model's logits and the base model's with PEFT's DoRA merge
    (W <- m / ||W + s B A|| * (W + s B A), bias unchanged), and between the DoRA and base logits."""
    modules = lora_modules(adapter_config, config)
    w = {k: v.double() for k, v in weights.items()}
    merged = dict(w)
    dora = {}
    for path, (_r, _alpha, scaling, _o, _i) in modules.items():
        a, b, m = (adapter_tensors[PREFIX + path + x].double() for x in (".lora_A.weight", ".lora_B.weight", ".lora_magnitude_vector"))
        dora[path] = (a, b, m, scaling)
        full = w[path + ".weight"] + scaling * (b @ a)
        merged[path + ".weight"] = (m / torch.linalg.norm(full, dim=1)).view(-1, 1) * full
    x = torch.tensor([ids], dtype=torch.int64)
    with torch.no_grad():
        adapted = DoraTorchModel(config, w, dora).logits(x)
        with_merged = TorchModel(config, merged).logits(x)
        base = TorchModel(config, w).logits(x)
    return rel_l2(adapted.numpy(), with_merged.numpy()), rel_l2(adapted.numpy(), base.numpy())


def method_reference(run_fn, merged_fn, extra):
    """A reference function (spec, models_dir, out_dir, check) -> (fixture, stats) for a method whose
    forward and backward are run_fn and whose merge check is merged_fn; extra(modules) adds fixture keys."""

    def reference(spec, models_dir, out_dir, check):
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
        loss, count, per_row, grads, modules = run_fn(config, weights, adapter_config, adapter_tensors, rows, labels, torch.float32)
        stats = {}
        if check:
            loss64, _, _, grads64, _ = run_fn(config, weights, adapter_config, adapter_tensors, rows, labels, torch.float64)
            stats["f64_loss_rel_diff"] = abs(loss - loss64) / abs(loss64)
            stats["f64_grad_max_rel_l2"] = max(rel_l2(grads[k].numpy(), grads64[k].numpy()) for k in grads)
            assert stats["f64_loss_rel_diff"] < 1e-5 and stats["f64_grad_max_rel_l2"] < 1e-4, "float64 rerun disagrees: %r" % stats
            if merged_fn:
                stats["merged_logits_rel_l2"], stats["adapter_effect_rel_l2"] = merged_fn(config, weights, adapter_config, adapter_tensors, rows[0])
                assert stats["merged_logits_rel_l2"] < 1e-6, "merged weights disagree with the adapter: %r" % stats
                assert stats["adapter_effect_rel_l2"] > 1e-2, "the adapter barely changes the logits: %r" % stats
        fixture = {
            "name": spec["name"],
            "model": spec["model"],
            "reference": "scripts/peft_reference.py (torch %s, float32, eval mode)" % torch.__version__,
            "model_files": {f: sha256(os.path.join(model_folder, f)) for f in sorted(os.listdir(model_folder))},
            "adapter_files": {f: sha256(os.path.join(adapter_folder, f)) for f in sorted(os.listdir(adapter_folder))},
            **extra(modules),
            "input_ids": rows,
            "labels": labels,
            "tokens": count,
            "loss": loss,
            "loss_per_row": per_row,
            "grads": {k: {"shape": list(v.shape), "values": [round_sig(x) for x in v.flatten().tolist()]} for k, v in sorted(grads.items())},
        }
        return fixture, stats

    return reference


# ---------------------------------------------------------------------------------------------
# Prompt tuning (peft_model.py PeftModelForCausalLM.forward with PROMPT_TUNING): inputs_embeds =
# cat(prompt_embeddings, embed(input_ids)), labels prefixed with -100 per virtual token, no position
# ids passed (transformers counts 0 .. nvt + T - 1). One tensor, prompt_embeddings [nvt, hidden].
# Written to fixtures/prompt/.

PROMPT_ADAPTERS = [
    {"name": "llama3-untied-f32-prompt", "model": "llama3-untied-f32", "seed": 61, "dtype": "F32", "num_virtual_tokens": 4},
    {"name": "qwen2-tied-f32-prompt", "model": "qwen2-tied-f32", "seed": 62, "dtype": "BF16", "num_virtual_tokens": 3},
]


def prompt_peft_config(spec, base_model, config):
    """adapter_config.json as PEFT 0.17 saves a causal-LM prompt-tuning adapter (sorted keys, indent 2)."""
    return {
        "auto_mapping": None,
        "base_model_name_or_path": base_model,
        "inference_mode": True,
        "modules_to_save": None,
        "num_attention_heads": config.heads,
        "num_layers": config.layers,
        "num_transformer_submodules": 1,
        "num_virtual_tokens": spec["num_virtual_tokens"],
        "peft_type": "PROMPT_TUNING",
        "peft_version": "0.17.1",
        "prompt_tuning_init": "RANDOM",
        "prompt_tuning_init_text": None,
        "revision": None,
        "task_type": "CAUSAL_LM",
        "token_dim": config.hidden,
        "tokenizer_kwargs": None,
        "tokenizer_name_or_path": None,
    }


def write_prompt_adapter(spec, model_folder, out_dir):
    """prompt_embeddings ~ N(0, 1) (nn.Embedding's init, PEFT's RANDOM)."""
    with open(os.path.join(model_folder, "config.json")) as f:
        config = Config(json.load(f))
    rng = np.random.RandomState(spec["seed"])
    embeddings = rng.standard_normal(size=(spec["num_virtual_tokens"], config.hidden)).astype(np.float32)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, ADAPTER_CONFIG), "w") as f:
        json.dump(prompt_peft_config(spec, spec["model"], config), f, indent=2, sort_keys=True)
    write_safetensors(os.path.join(out_dir, ADAPTER_WEIGHTS), [("prompt_embeddings", embeddings)], spec["dtype"])


class PromptTorchModel(LoraTorchModel):
    """TorchModel fed cat(prompt_embeddings, embed(ids)) as inputs_embeds."""

    def __init__(self, config, weights, prompt):
        super().__init__(config, weights, {}, 0.0)
        self.prompt = prompt  # (nvt, C)

    def logits(self, ids):
        c = self.c
        emb = F.embedding(ids, self.w["model.embed_tokens.weight"])  # (B, T, C)
        h = torch.cat([self.prompt.unsqueeze(0).expand(ids.shape[0], -1, -1), emb], dim=1)  # (B, nvt + T, C)
        T = h.shape[1]
        cos, sin = rotary_cos_sin(self.inv_freq.to(h.dtype), T)
        mask = causal_mask(T, c.sliding_window).to(h.dtype)
        for layer in range(c.layers):
            p = "model.layers.%d." % layer
            h = h + self.attention(rms_norm(h, self.w[p + "input_layernorm.weight"], c.eps), p + "self_attn.", cos, sin, mask)
            h = h + self.mlp(rms_norm(h, self.w[p + "post_attention_layernorm.weight"], c.eps), p + "mlp.")
        h = rms_norm(h, self.w["model.norm.weight"], c.eps)
        head = self.w["model.embed_tokens.weight"] if c.tied else self.w["lm_head.weight"]
        return F.linear(h, head)  # (B, nvt + T, V)


def run_prompt(config, weights, adapter_config, adapter_tensors, rows, labels, dtype):
    assert set(adapter_tensors) == {"prompt_embeddings"}, "a prompt-tuning adapter holds prompt_embeddings only"
    nvt = adapter_config["num_virtual_tokens"]
    prompt = adapter_tensors["prompt_embeddings"].to(dtype).clone().requires_grad_(True)
    assert tuple(prompt.shape) == (nvt, config.hidden)
    model = PromptTorchModel(config, {k: v.to(dtype) for k, v in weights.items()}, prompt)
    total, count, per_row = 0.0, 0, []
    for ids, lab in zip(rows, labels):
        logits = model.logits(torch.tensor([ids], dtype=torch.int64))  # (1, nvt + T, V)
        full = [IGNORE_INDEX] * nvt + lab  # PEFT prefixes the labels with -100 per virtual token
        target = torch.tensor(full[1:] + [IGNORE_INDEX], dtype=torch.int64)
        s = F.cross_entropy(logits[0], target, ignore_index=IGNORE_INDEX, reduction="sum")
        n = int((target != IGNORE_INDEX).sum())
        per_row.append(float(s) / n)
        total = total + s
        count += n
    loss = total / count
    loss.backward()
    return float(loss), count, per_row, {"prompt_embeddings": prompt.grad.detach().clone()}, {}


# ---------------------------------------------------------------------------------------------
# Prefix tuning (PREFIX_TUNING, no prefix_projection): prompt_embeddings [nvt, L * 2 * Hkv * D] is
# viewed as (nvt, L * 2, Hkv, D) and split per layer into past keys and values (peft_model.py
# get_prompt), put into the cache as they are (no RoPE); every token attends them, and the real
# tokens' positions start at nvt (transformers' cache_position counts from the cache length).
# Written to fixtures/prefix/.

PREFIX_ADAPTERS = [
    {"name": "llama3-untied-f32-prefix", "model": "llama3-untied-f32", "seed": 71, "dtype": "F32", "num_virtual_tokens": 3},
    {"name": "qwen2-tied-f32-prefix", "model": "qwen2-tied-f32", "seed": 72, "dtype": "BF16", "num_virtual_tokens": 2},
]


def prefix_peft_config(spec, base_model, config):
    """adapter_config.json as PEFT 0.17 saves a causal-LM prefix-tuning adapter: token_dim and
    num_attention_heads are the key/value heads' (grouped-query adjustment), encoder_hidden_size = token_dim."""
    token_dim = config.head_dim * config.kv_heads
    return {
        "auto_mapping": None,
        "base_model_name_or_path": base_model,
        "encoder_hidden_size": token_dim,
        "inference_mode": True,
        "modules_to_save": None,
        "num_attention_heads": config.kv_heads,
        "num_layers": config.layers,
        "num_transformer_submodules": 1,
        "num_virtual_tokens": spec["num_virtual_tokens"],
        "peft_type": "PREFIX_TUNING",
        "peft_version": "0.17.1",
        "prefix_projection": False,
        "revision": None,
        "task_type": "CAUSAL_LM",
        "token_dim": token_dim,
    }


def write_prefix_adapter(spec, model_folder, out_dir):
    with open(os.path.join(model_folder, "config.json")) as f:
        config = Config(json.load(f))
    rng = np.random.RandomState(spec["seed"])
    width = config.layers * 2 * config.kv_heads * config.head_dim
    table = rng.standard_normal(size=(spec["num_virtual_tokens"], width)).astype(np.float32)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, ADAPTER_CONFIG), "w") as f:
        json.dump(prefix_peft_config(spec, spec["model"], config), f, indent=2, sort_keys=True)
    write_safetensors(os.path.join(out_dir, ADAPTER_WEIGHTS), [("prompt_embeddings", table)], spec["dtype"])


class PrefixTorchModel(LoraTorchModel):
    """TorchModel whose attention layers attend past keys and values from a prefix table first."""

    def __init__(self, config, weights, table, nvt):
        super().__init__(config, weights, {}, 0.0)
        c = config
        # get_prompt: view(B, nvt, L * 2, Hkv, D).permute(2, 0, 3, 1, 4).split(2) -> per layer (2, B, Hkv, nvt, D)
        self.past = table.view(nvt, c.layers * 2, c.kv_heads, c.head_dim).permute(1, 2, 0, 3)  # (L * 2, Hkv, nvt, D)
        self.nvt = nvt

    def attention(self, x, p, cos, sin, mask):
        c = self.c
        B, T, _ = x.shape
        layer = int(p.split(".")[2])
        shape = (B, T, -1, c.head_dim)
        q = self.linear(x, p + "q_proj", c.qkv_bias).view(shape)
        k = self.linear(x, p + "k_proj", c.qkv_bias).view(shape)
        v = self.linear(x, p + "v_proj", c.qkv_bias).view(shape).transpose(1, 2)
        if c.qk_norm:
            q = rms_norm(q, self.w[p + "q_norm.weight"], c.eps)
            k = rms_norm(k, self.w[p + "k_norm.weight"], c.eps)
        q, k = q.transpose(1, 2), k.transpose(1, 2)  # (B, H, T, D)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)  # at positions nvt .. nvt + T - 1
        pk = self.past[2 * layer].unsqueeze(0).expand(B, -1, -1, -1)  # (B, Hkv, nvt, D), no RoPE
        pv = self.past[2 * layer + 1].unsqueeze(0).expand(B, -1, -1, -1)
        k = torch.cat([pk, k], dim=2)
        v = torch.cat([pv, v], dim=2)
        groups = c.heads // c.kv_heads
        k = repeat_kv(k, groups)
        v = repeat_kv(v, groups)
        scores = torch.matmul(q, k.transpose(2, 3)) * c.head_dim**-0.5 + mask  # (B, H, T, nvt + T)
        probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        out = torch.matmul(probs, v).transpose(1, 2).contiguous().reshape(B, T, -1)
        return self.linear(out, p + "o_proj", c.o_bias)

    def logits(self, ids):
        c = self.c
        T = ids.shape[1]
        h = F.embedding(ids, self.w["model.embed_tokens.weight"])  # (B, T, C)
        cos, sin = rotary_cos_sin(self.inv_freq.to(h.dtype), self.nvt + T)
        cos, sin = cos[:, self.nvt :], sin[:, self.nvt :]  # positions nvt .. nvt + T - 1
        causal = causal_mask(T, c.sliding_window).to(h.dtype)
        mask = torch.cat([torch.zeros(T, self.nvt, dtype=h.dtype), causal], dim=1)  # the prefix is always visible
        for layer in range(c.layers):
            p = "model.layers.%d." % layer
            h = h + self.attention(rms_norm(h, self.w[p + "input_layernorm.weight"], c.eps), p + "self_attn.", cos, sin, mask)
            h = h + self.mlp(rms_norm(h, self.w[p + "post_attention_layernorm.weight"], c.eps), p + "mlp.")
        h = rms_norm(h, self.w["model.norm.weight"], c.eps)
        head = self.w["model.embed_tokens.weight"] if c.tied else self.w["lm_head.weight"]
        return F.linear(h, head)


def run_prefix(config, weights, adapter_config, adapter_tensors, rows, labels, dtype):
    assert set(adapter_tensors) == {"prompt_embeddings"}, "a prefix-tuning adapter holds prompt_embeddings only"
    nvt = adapter_config["num_virtual_tokens"]
    table = adapter_tensors["prompt_embeddings"].to(dtype).clone().requires_grad_(True)
    assert tuple(table.shape) == (nvt, config.layers * 2 * config.kv_heads * config.head_dim)
    model = PrefixTorchModel(config, {k: v.to(dtype) for k, v in weights.items()}, table, nvt)
    loss, count, per_row = loss_of_rows(model, rows, labels)
    loss.backward()
    return float(loss), count, per_row, {"prompt_embeddings": table.grad.detach().clone()}, {}


# ---------------------------------------------------------------------------------------------
# Prefix tuning with prefix_projection (peft/tuners/prefix_tuning/model.py PrefixEncoder, training
# mode): nn.Embedding(nvt, token_dim) of arange(nvt), then nn.Sequential(nn.Linear(token_dim,
# encoder_hidden_size), nn.Tanh(), nn.Linear(encoder_hidden_size, L * 2 * token_dim)); its output is
# the table PrefixTorchModel attends. The adapter folder holds what PEFT saves
# (get_prompt_embedding_to_save: prompt_embeddings = the encoder's output, and adapter_config.json with
# prefix_projection true and encoder_hidden_size) plus prefix_encoder.safetensors, the encoder's own
# state_dict (which PEFT does not save), so that the fixture can hold the gradient of every trainable
# tensor of the encoder. Written to fixtures/prefix/.

PREFIX_PROJECTION_ADAPTERS = [
    {"name": "llama3-untied-f32-prefix-projection", "model": "llama3-untied-f32", "seed": 73, "dtype": "F32", "num_virtual_tokens": 3, "encoder_hidden_size": 24},
]
PREFIX_ENCODER_WEIGHTS = "prefix_encoder.safetensors"


class PrefixEncoder(torch.nn.Module):
    """PEFT's PrefixEncoder with prefix_projection and inference_mode off (the same module names)."""

    def __init__(self, nvt, token_dim, hidden, layers):
        super().__init__()
        self.embedding = torch.nn.Embedding(nvt, token_dim)
        self.transform = torch.nn.Sequential(
            torch.nn.Linear(token_dim, hidden),
            torch.nn.Tanh(),
            torch.nn.Linear(hidden, layers * 2 * token_dim),
        )

    def forward(self, prefix):
        return self.transform(self.embedding(prefix))


def prefix_encoder_state(spec, config):
    """Deterministic encoder weights: the embedding N(0, 1) and each Linear U(-b, b) with b = 1/sqrt(in)
    (nn.Linear's default bound), the second Linear's scaled by 3 so that the prefix changes the model."""
    rng = np.random.RandomState(spec["seed"])
    nvt, hidden = spec["num_virtual_tokens"], spec["encoder_hidden_size"]
    dim = config.head_dim * config.kv_heads
    width = config.layers * 2 * dim

    def uniform(shape, fan_in, gain=1.0):
        bound = gain / math.sqrt(fan_in)
        return rng.uniform(-bound, bound, size=shape).astype(np.float32)

    return [
        ("embedding.weight", rng.standard_normal(size=(nvt, dim)).astype(np.float32)),
        ("transform.0.weight", uniform((hidden, dim), dim)),
        ("transform.0.bias", uniform((hidden,), dim)),
        ("transform.2.weight", uniform((width, hidden), hidden, 3.0)),
        ("transform.2.bias", uniform((width,), hidden, 3.0)),
    ]


def prefix_encoder(config, adapter_config, state, dtype):
    nvt = adapter_config["num_virtual_tokens"]
    token_dim = adapter_config["token_dim"]
    assert token_dim == config.head_dim * config.kv_heads, "token_dim must be head_dim * num_key_value_heads (PEFT's grouped-query adjustment)"
    encoder = PrefixEncoder(nvt, token_dim, adapter_config["encoder_hidden_size"], config.layers).to(dtype)
    encoder.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True)
    return encoder


def write_prefix_projection_adapter(spec, model_folder, out_dir):
    with open(os.path.join(model_folder, "config.json")) as f:
        config = Config(json.load(f))
    adapter_config = prefix_peft_config(spec, spec["model"], config)
    adapter_config["prefix_projection"] = True
    adapter_config["encoder_hidden_size"] = spec["encoder_hidden_size"]
    state = prefix_encoder_state(spec, config)
    encoder = prefix_encoder(config, adapter_config, {k: torch.from_numpy(v) for k, v in state}, torch.float32)
    with torch.no_grad():
        table = encoder(torch.arange(spec["num_virtual_tokens"])).numpy()  # get_prompt_embedding_to_save
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, ADAPTER_CONFIG), "w") as f:
        json.dump(adapter_config, f, indent=2, sort_keys=True)
    write_safetensors(os.path.join(out_dir, ADAPTER_WEIGHTS), [("prompt_embeddings", table)], spec["dtype"])
    write_safetensors(os.path.join(out_dir, PREFIX_ENCODER_WEIGHTS), state, "F32")


def run_prefix_projection(config, weights, adapter_config, adapter_tensors, rows, labels, dtype, state):
    assert adapter_config["prefix_projection"] is True, "the adapter config must have prefix_projection true"
    nvt = adapter_config["num_virtual_tokens"]
    encoder = prefix_encoder(config, adapter_config, state, dtype)
    table = encoder(torch.arange(nvt))  # (nvt, L * 2 * Hkv * D), PeftModel.get_prompt in training mode
    model = PrefixTorchModel(config, {k: v.to(dtype) for k, v in weights.items()}, table, nvt)
    loss, count, per_row = loss_of_rows(model, rows, labels)
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in encoder.named_parameters()}
    return float(loss), count, per_row, grads, {}


def prefix_projection_reference(spec, models_dir, out_dir, check):
    adapter_folder = os.path.join(out_dir, spec["name"])
    state = read_safetensors(os.path.join(adapter_folder, PREFIX_ENCODER_WEIGHTS))
    fixture, stats = method_reference(lambda *a: run_prefix_projection(*a, state=state), None, lambda m: {})(spec, models_dir, out_dir, check)
    if check:
        # The saved table is the encoder's output: recompute it in float64.
        with open(os.path.join(models_dir, spec["model"], "config.json")) as f:
            config = Config(json.load(f))
        adapter_config, adapter_tensors = read_adapter(adapter_folder)
        with torch.no_grad():
            table64 = prefix_encoder(config, adapter_config, state, torch.float64)(torch.arange(spec["num_virtual_tokens"]))
        stats["saved_table_rel_l2"] = rel_l2(adapter_tensors["prompt_embeddings"].numpy(), table64.numpy())
        assert stats["saved_table_rel_l2"] < 1e-6, "the saved prompt_embeddings is not the encoder's output: %r" % stats
    return fixture, stats


# ---------------------------------------------------------------------------------------------
# Full fine-tuning: every weight of the model trainable. The fixture holds the loss and the gradients
# of a sample of weights (full_sample): the embedding and lm_head (if untied), layer 0's q_proj (and
# its bias where the model has one), layer 1's down_proj on some rows; layer 0's input norm and the
# final norm whole. Written to fixtures/full/<model>-full.json; there is no adapter
# folder (the model's own folder is the starting point).

FULL_MODELS = [
    {"name": "llama3-untied-f32-full", "model": "llama3-untied-f32"},
    {"name": "qwen2-tied-f32-full", "model": "qwen2-tied-f32"},
]


def full_sample(config, rows):
    """{weight name: sampled rows or None (all)}: the vocabulary rows of the texts' tokens and every
    64th, every 4th row of the projections, the whole of the 1-D weights."""
    tokens = sorted(set(t for r in rows for t in r))
    vocab_rows = sorted(set(tokens) | set(range(0, config.vocab, 64)))
    names = {
        "model.embed_tokens.weight": vocab_rows,
        "model.layers.0.self_attn.q_proj.weight": list(range(0, config.heads * config.head_dim, 4)),
        "model.layers.1.mlp.down_proj.weight": list(range(0, config.hidden, 4)),
        "model.layers.0.input_layernorm.weight": None,
        "model.norm.weight": None,
    }
    if config.qkv_bias:
        names["model.layers.0.self_attn.q_proj.bias"] = None
    if not config.tied:
        names["lm_head.weight"] = vocab_rows
    return names


def run_full(config, weights, rows, labels, dtype):
    w = {k: v.to(dtype).clone().requires_grad_(True) for k, v in weights.items()}
    model = LoraTorchModel(config, w, {}, 0.0)
    loss, count, per_row = loss_of_rows(model, rows, labels)
    loss.backward()
    return float(loss), count, per_row, {k: v.grad.detach().clone() for k, v in w.items()}


def full_reference(spec, models_dir, check):
    model_folder = os.path.join(models_dir, spec["model"])
    with open(os.path.join(model_folder, "config.json")) as f:
        config = Config(json.load(f))
    with open(os.path.join(model_folder, "tokenizer.json")) as f:
        tokenizer_json = json.load(f)
    weights = read_safetensors(os.path.join(model_folder, "model.safetensors"))
    rows = [bpe_encode(tokenizer_json, t) for t in TEXTS]
    labels = [list(rows[0]), [IGNORE_INDEX, IGNORE_INDEX] + rows[1][2:]]
    loss, count, per_row, grads = run_full(config, weights, rows, labels, torch.float32)
    sample = full_sample(config, rows)
    stats = {}
    if check:
        loss64, _, _, grads64 = run_full(config, weights, rows, labels, torch.float64)
        stats["f64_loss_rel_diff"] = abs(loss - loss64) / abs(loss64)
        stats["f64_grad_max_rel_l2"] = max(rel_l2(grads[k].numpy(), grads64[k].numpy()) for k in sample)
        assert stats["f64_loss_rel_diff"] < 1e-5 and stats["f64_grad_max_rel_l2"] < 1e-4, "float64 rerun disagrees: %r" % stats

    def entry(name, picked):
        g = grads[name]
        out = {"shape": list(g.shape)}
        if picked is not None:
            out["rows"] = picked
            g = g[picked]
        out["values"] = [round_sig(x) for x in g.flatten().tolist()]
        return out

    fixture = {
        "name": spec["name"],
        "model": spec["model"],
        "reference": "scripts/peft_reference.py (torch %s, float32, every weight trainable)" % torch.__version__,
        "model_files": {f: sha256(os.path.join(model_folder, f)) for f in sorted(os.listdir(model_folder))},
        "input_ids": rows,
        "labels": labels,
        "tokens": count,
        "loss": loss,
        "loss_per_row": per_row,
        "grads": {k: entry(k, picked) for k, picked in sorted(sample.items())},
    }
    return fixture, stats


# ---------------------------------------------------------------------------------------------
# Bottleneck (Houlsby) adapters, which PEFT does not have: Whetstone's layout after AdapterHub's
# naming (docs/methods.md). After o_proj (attention_adapters) and after down_proj (output_adapters)
# of every layer: y + adapter_up(silu(adapter_down(y))), both Linear with bias. Written to
# fixtures/adapter/ as adapter_config.json + pytorch_adapter.safetensors.

BOTTLENECK_WEIGHTS = "pytorch_adapter.safetensors"
BOTTLENECK_ADAPTERS = [
    {"name": "llama3-untied-f32-adapter", "model": "llama3-untied-f32", "seed": 81, "dtype": "F32", "reduction_factor": 16},
    {"name": "qwen2-tied-f32-adapter", "model": "qwen2-tied-f32", "seed": 82, "dtype": "BF16", "reduction_factor": 8},
]
BOTTLENECK_PARTS = ("adapter_down.0.weight", "adapter_down.0.bias", "adapter_up.weight", "adapter_up.bias")


def bottleneck_sites(config):
    """{projection path: key prefix} for both adapters of every layer."""
    out = {}
    for layer in range(config.layers):
        out["model.layers.%d.self_attn.o_proj" % layer] = "model.layers.%d.attention_adapters.adapters.default" % layer
        out["model.layers.%d.mlp.down_proj" % layer] = "model.layers.%d.output_adapters.adapters.default" % layer
    return out


def write_bottleneck_adapter(spec, model_folder, out_dir):
    """Deterministic nonzero weights (adapter_up too, so that the adapters change the model)."""
    with open(os.path.join(model_folder, "config.json")) as f:
        raw = json.load(f)
    config = Config(raw)
    r = max(1, config.hidden // spec["reduction_factor"])
    rng = np.random.RandomState(spec["seed"])
    tensors = []
    for prefix in bottleneck_sites(config).values():
        shapes = [(r, config.hidden), (r,), (config.hidden, r), (config.hidden,)]
        for part, shape in zip(BOTTLENECK_PARTS, shapes):
            tensors.append((prefix + "." + part, (0.3 * rng.standard_normal(size=shape)).astype(np.float32)))
    adapter_config = {
        "config": {
            "architecture": "bottleneck",
            "ln_after": False,
            "ln_before": False,
            "mh_adapter": True,
            "non_linearity": "swish",
            "original_ln_after": False,
            "original_ln_before": False,
            "output_adapter": True,
            "reduction_factor": spec["reduction_factor"],
            "residual_before_ln": True,
            "scaling": 1.0,
        },
        "hidden_size": config.hidden,
        "model_name": spec["model"],
        "model_type": raw.get("model_type"),
        "name": "default",
        "version": "whetstone",
    }
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, ADAPTER_CONFIG), "w") as f:
        json.dump(adapter_config, f, indent=2, sort_keys=True)
    write_safetensors(os.path.join(out_dir, BOTTLENECK_WEIGHTS), tensors, spec["dtype"])


class BottleneckTorchModel(LoraTorchModel):
    def __init__(self, config, weights, adapters):
        super().__init__(config, weights, {}, 0.0)
        self.adapters = adapters  # {projection path: (down W, down b, up W, up b)}

    def linear(self, x, name, bias):
        y = super().linear(x, name, bias)
        if name not in self.adapters:
            return y
        dw, db, uw, ub = self.adapters[name]
        return y + F.linear(F.silu(F.linear(y, dw, db)), uw, ub)


def run_bottleneck(config, weights, adapter_config, adapter_tensors, rows, labels, dtype):
    sites = bottleneck_sites(config)
    assert set(adapter_tensors) == {p + "." + part for p in sites.values() for part in BOTTLENECK_PARTS}, "adapter tensors do not match"
    params = {k: v.to(dtype).clone().requires_grad_(True) for k, v in adapter_tensors.items()}
    adapters = {path: tuple(params[prefix + "." + part] for part in BOTTLENECK_PARTS) for path, prefix in sites.items()}
    model = BottleneckTorchModel(config, {k: v.to(dtype) for k, v in weights.items()}, adapters)
    loss, count, per_row = loss_of_rows(model, rows, labels)
    loss.backward()
    return float(loss), count, per_row, {k: v.grad.detach().clone() for k, v in params.items()}, {}


# Methods beside LoRA: their adapters, writer and reference, and where their fixtures go by default.
METHOD_FIXTURES = {
    "ia3": (IA3_ADAPTERS, write_ia3_adapter, ia3_reference, "fixtures/ia3"),
    "adapter": (BOTTLENECK_ADAPTERS, write_bottleneck_adapter, method_reference(run_bottleneck, None, lambda m: {}), "fixtures/adapter"),
    "prefix": (PREFIX_ADAPTERS, write_prefix_adapter, method_reference(run_prefix, None, lambda m: {}), "fixtures/prefix"),
    "prefix-projection": (PREFIX_PROJECTION_ADAPTERS, write_prefix_projection_adapter, prefix_projection_reference, "fixtures/prefix"),
    "prompt": (PROMPT_ADAPTERS, write_prompt_adapter, method_reference(run_prompt, None, lambda m: {}), "fixtures/prompt"),
    "dora": (DORA_ADAPTERS, write_dora_adapter, method_reference(run_dora, dora_merged_check, lambda m: {"scaling": {p: v[2] for p, v in m.items()}}), "fixtures/dora"),
}


def write_fixture(spec, fixture, stats, path):
    with open(path, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    print("%-24s tokens %d  loss %.6f  %s  -> %s (%d bytes)" % (spec["name"], fixture["tokens"], fixture["loss"], " ".join("%s %.2e" % (k, v) for k, v in stats.items()), path, os.path.getsize(path)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models_dir", help="folder of the tiny model folders (scripts/tiny/write-models.ts)")
    ap.add_argument("--out", default="fixtures/lora", help="where the adapter folders are and the fixtures go (default fixtures/lora)")
    ap.add_argument("--write-adapters", action="store_true", help="write the deterministic adapter folders first")
    ap.add_argument("--check", action="store_true", help="also rerun in float64 and check merged weights")
    ap.add_argument("--methods", default="lora," + ",".join(METHOD_FIXTURES) + ",full", help="methods to compute (default: all; LoRA fixtures go to --out, full fine-tuning's to fixtures/full, prefix-projection's to fixtures/prefix, the others to fixtures/<method>)")
    args = ap.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]

    torch.manual_seed(0)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    for method in methods:
        if method == "lora":
            continue
        if method == "full":
            os.makedirs("fixtures/full", exist_ok=True)
            for spec in FULL_MODELS:
                fixture, stats = full_reference(spec, args.models_dir, args.check)
                write_fixture(spec, fixture, stats, os.path.join("fixtures/full", spec["name"] + ".json"))
            continue
        adapters, writer, reference, out_dir = METHOD_FIXTURES[method]
        os.makedirs(out_dir, exist_ok=True)
        for spec in adapters:
            if args.write_adapters:
                writer(spec, os.path.join(args.models_dir, spec["model"]), os.path.join(out_dir, spec["name"]))
            fixture, stats = reference(spec, args.models_dir, out_dir, args.check)
            write_fixture(spec, fixture, stats, os.path.join(out_dir, spec["name"] + ".json"))
    for spec in ADAPTERS if "lora" in methods else []:
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
