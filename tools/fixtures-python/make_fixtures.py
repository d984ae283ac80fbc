#!/usr/bin/env python3
"""Write the Hugging Face PEFT interop fixtures into <repo>/fixtures/.

Usage (from the repository root):
    .venv-hf/bin/python tools/fixtures-python/make_fixtures.py [--out fixtures]

Deterministic: seeded torch CPU, one thread, PYTHONHASHSEED=0 (PEFT stores
`target_modules` as a Python set, so its order in adapter_config.json depends on
string hashing; the script re-executes itself with PYTHONHASHSEED=0).
See README.md next to this file for the versions used.
"""

from __future__ import annotations

import os
import sys

if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)

import argparse
import copy
import json
import shutil
import warnings

import torch
from safetensors.torch import save_file

import peft
import safetensors
import transformers
from peft import (
    IA3Config,
    LoraConfig,
    PeftModel,
    PrefixTuningConfig,
    PromptTuningConfig,
    PromptTuningInit,
    TaskType,
    get_peft_model,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_models import MLP, ConvNet, EmbedNet, build_base, load_inputs  # noqa: E402

warnings.filterwarnings("ignore")
transformers.logging.set_verbosity_error()
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VERSIONS = {
    "python": sys.version.split()[0],
    "torch": torch.__version__,
    "peft": peft.__version__,
    "transformers": transformers.__version__,
    "safetensors": safetensors.__version__,
}
ATOL = 1e-5
BASE_SEED = {"mlp": 1234, "conv": 2345, "embedding": 3456, "bert": 4567, "gpt2": 5678}

LINEAR_LAYOUT = (
    "torch nn.Linear: weight [out_features, in_features], bias [out_features]; "
    "y = x @ weight.T + bias. A tfjs Dense kernel is weight.T ([in, out])."
)


# ----------------------------------------------------------------------------- helpers
def tolist(t: torch.Tensor):
    if t.dtype in (torch.int64, torch.int32):
        return t.tolist()
    return t.detach().to(torch.float32).tolist()  # float32 -> exact Python float


def write_json(path: str, obj: dict, compact_values: bool = True) -> None:
    """Top-level keys one per line, values on one line (keeps io.json small and diffable)."""
    if compact_values:
        body = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in obj.items())
        text = "{\n" + body + "\n}\n"
    else:
        text = json.dumps(obj, indent=2) + "\n"
    with open(path, "w") as f:
        f.write(text)


def save_state_dict(model: torch.nn.Module, path: str) -> None:
    # clone: tied tensors (GPT-2 lm_head/wte) cannot be saved as shared storage
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(state, path, metadata={"format": "pt"})


def fresh_dir(path: str) -> str:
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)
    return path


def max_diff(a, b) -> float:
    if isinstance(a, dict):
        return max(max_diff(a[k], b[k]) for k in a)
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def assert_close(name: str, a, b, atol: float = 1e-6) -> None:
    d = max_diff(a, b)
    if d > atol:
        raise AssertionError(f"{name}: max abs diff {d} > {atol}")


@torch.no_grad()
def run(model, args, kwargs=None):
    model.eval()
    return model(*args, **(kwargs or {}))


def scaling(cfg: LoraConfig, r: int) -> float:
    return cfg.lora_alpha / (r**0.5) if cfg.use_rslora else cfg.lora_alpha / r


def lora_desc(name: str, path: str, cfg) -> dict:
    d = {"name": name, "path": path, "peft_type": str(cfg.peft_type.value)}
    if isinstance(cfg, LoraConfig):
        d.update(
            r=cfg.r,
            lora_alpha=cfg.lora_alpha,
            use_rslora=cfg.use_rslora,
            use_dora=cfg.use_dora,
            bias=cfg.bias,
            scaling=scaling(cfg, cfg.r),
            scaling_formula="lora_alpha / sqrt(r)" if cfg.use_rslora else "lora_alpha / r",
        )
    return d


# ----------------------------------------------------------------------------- model.json
MLP_LAYERS = [
    {"name": "fc1", "torch_type": "Linear", "tfjs_type": "dense", "in_features": 6, "out_features": 10,
     "bias": True, "activation": "relu"},
    {"name": "fc2", "torch_type": "Linear", "tfjs_type": "dense", "in_features": 10, "out_features": 8,
     "bias": True, "activation": "relu"},
    {"name": "head", "torch_type": "Linear", "tfjs_type": "dense", "in_features": 8, "out_features": 3,
     "bias": True, "activation": "linear"},
]


def mlp_model_json(fixture: str, adapters: list, notes: list | None = None) -> dict:
    return {
        "fixture": fixture,
        "kind": "mlp",
        "input": {"shape": [None, 6], "dtype": "float32"},
        "layers": MLP_LAYERS,
        "order": "x -> fc1 -> relu -> fc2 -> relu -> head -> output",
        "output": {"shape": [None, 3], "what": "raw output of head (no softmax)"},
        "weights_file": "base_model.safetensors",
        "weights_layout": LINEAR_LAYOUT,
        "adapters": adapters,
        "notes": notes or [],
        "versions": VERSIONS,
    }


# ----------------------------------------------------------------------------- toy fixtures
def toy_fixture(out_root, name, kind, make_base, inputs, peft_cfgs, *, seed, perturb=None,
                model_json=None, input_dtype="float32", extra_io=None, two_adapters=False):
    """Generic toy-model fixture: base + one or more adapters, outputs, save, round-trip check."""
    out = fresh_dir(os.path.join(out_root, name))
    torch.manual_seed(BASE_SEED[kind])
    base = make_base().eval()
    save_state_dict(base, os.path.join(out, "base_model.safetensors"))
    write_json(os.path.join(out, "model.json"), model_json, compact_values=False)

    args = (inputs,)
    base_out = run(base, args)
    # the committed file must rebuild the same base
    assert_close(f"{name} rebuilt base", run(build_base(out), args), base_out, 0.0)

    torch.manual_seed(seed)
    names = list(peft_cfgs)
    pm = get_peft_model(base, peft_cfgs[names[0]], adapter_name=names[0])
    for n in names[1:]:
        pm.add_adapter(n, peft_cfgs[n])
    if perturb is not None:
        with torch.no_grad():
            perturb(pm)
    pm.eval()
    pm.set_adapter(names[0])

    io = {"description": f"{name}: outputs of the torch model (eval mode, float32)",
          "input_dtype": input_dtype, "inputs": tolist(inputs)}
    if extra_io:
        io.update(extra_io)
    io["base_outputs"] = tolist(base_out)

    adapter_out = run(pm, args)
    with pm.disable_adapter():
        disabled_out = run(pm, args)
    io["adapter_outputs"] = tolist(adapter_out)
    if max_diff(adapter_out, base_out) < 1e-3:
        raise AssertionError(f"{name}: adapter is (nearly) a no-op")
    if max_diff(disabled_out, base_out) > 1e-6:
        # only bias="all": trained biases live in the base layers and stay when disabled
        io["disabled_adapter_outputs"] = tolist(disabled_out)

    merged = copy.deepcopy(pm).merge_and_unload()
    io["merged_outputs"] = tolist(run(merged, args))
    assert_close(f"{name} merged vs unmerged", io["merged_outputs"], adapter_out, ATOL)

    if two_adapters:
        by_name, merged_by_name = {}, {}
        for combo in [[n] for n in names] + [names]:
            key = "+".join(combo)
            pm.base_model.set_adapter(combo if len(combo) > 1 else combo[0])
            by_name[key] = tolist(run(pm, args))
            m = copy.deepcopy(pm)
            m.base_model.set_adapter(combo if len(combo) > 1 else combo[0])
            merged_by_name[key] = tolist(run(m.merge_and_unload(), args))
            assert_close(f"{name} merged {key}", merged_by_name[key], by_name[key], ATOL)
        pm.base_model.set_adapter(names[0])
        io["adapter_outputs_by_name"] = by_name
        io["merged_outputs_by_name"] = merged_by_name

    pm.save_pretrained(out)

    # round trip through PEFT's own loader from the committed files
    loaded = PeftModel.from_pretrained(build_base(out), out, adapter_name=names[0])
    for n in names[1:]:
        loaded.load_adapter(os.path.join(out, n), adapter_name=n)
    assert_close(f"{name} reload", run(loaded, args), adapter_out, 1e-6)
    if two_adapters:
        for key, expected in io["adapter_outputs_by_name"].items():
            combo = key.split("+")
            loaded.base_model.set_adapter(combo if len(combo) > 1 else combo[0])
            assert_close(f"{name} reload {key}", run(loaded, args), expected, 1e-6)

    io["tolerance"] = {"atol": ATOL}
    io["versions"] = VERSIONS
    write_json(os.path.join(out, "io.json"), io)
    print(f"wrote {name}")


def randomize(pm, substr, fn):
    for n, p in pm.named_parameters():
        if substr in n:
            p.copy_(fn(p))


def make_mlp_fixtures(out_root):
    torch.manual_seed(11)
    x = torch.randn(4, 6)

    def lcfg(**kw):
        base = dict(r=4, lora_alpha=8, target_modules=["fc1", "fc2"], init_lora_weights=False)
        base.update(kw)
        return LoraConfig(**base)

    cases = [
        ("lora-mlp", {}, None, []),
        ("lora-mlp-rslora", {"use_rslora": True}, None, ["rsLoRA: scaling = lora_alpha / sqrt(r) = 4.0"]),
        ("lora-mlp-dora", {"use_dora": True},
         lambda pm: randomize(pm, "lora_magnitude_vector", lambda p: p * (0.5 + torch.rand_like(p))),
         ["DoRA: lora_magnitude_vector was multiplied by U(0.5,1.5) after init so it differs from "
          "the row norms of W + scaling*B@A (otherwise DoRA == LoRA at init)."]),
        ("lora-mlp-bias-all", {"bias": "all"},
         lambda pm: randomize(pm, "bias", lambda p: p + 0.5 * torch.randn_like(p)),
         ["bias='all': every bias in the model (fc1, fc2 AND head) was perturbed by 0.5*N(0,1) and is "
          "saved in the adapter. base_outputs use the ORIGINAL biases (base_model.safetensors); "
          "PEFT's disable_adapter() does NOT restore biases, see disabled_adapter_outputs."]),
        ("lora-mlp-modules-to-save", {"modules_to_save": ["head"]},
         lambda pm: randomize(pm, "head.modules_to_save", lambda p: p + 0.5 * torch.randn_like(p)),
         ["modules_to_save=['head']: PEFT trains a full copy of head; the copy was perturbed by "
          "0.5*N(0,1). The adapter file stores it as base_model.model.head.weight / .bias (no "
          "'modules_to_save.default' in the saved key). With the adapter disabled the original head "
          "(base_model.safetensors) is used."]),
    ]
    for i, (name, kw, perturb, notes) in enumerate(cases):
        cfg = lcfg(**kw)
        toy_fixture(out_root, name, "mlp", MLP, x, {"default": cfg}, seed=100 + i, perturb=perturb,
                    model_json=mlp_model_json(name, [lora_desc("default", ".", cfg)], notes))

    cfgs = {"default": lcfg(), "other": lcfg(r=2, lora_alpha=8)}
    toy_fixture(out_root, "lora-mlp-two-adapters", "mlp", MLP, x, cfgs, seed=110, two_adapters=True,
                model_json=mlp_model_json("lora-mlp-two-adapters",
                                          [lora_desc("default", ".", cfgs["default"]),
                                           lora_desc("other", "other", cfgs["other"])],
                                          ["Two LoRA adapters on the same base. 'default' is saved in the "
                                           "folder root, 'other' in the subfolder 'other/' (PEFT names the "
                                           "subfolder after the adapter). Keys inside both files carry no "
                                           "adapter name. io.json adapter_outputs_by_name: each adapter "
                                           "active alone, and 'default+other' = both active at once "
                                           "(LoraModel.set_adapter(['default','other'])): the two deltas "
                                           "are summed, each with its own scaling."]))

    # IA3
    ia3 = IA3Config(target_modules=["fc1", "fc2"], feedforward_modules=["fc2"])
    toy_fixture(out_root, "ia3-mlp", "mlp", MLP, x, {"default": ia3}, seed=120,
                perturb=lambda pm: randomize(pm, "ia3_l", lambda p: 1.0 + 0.5 * torch.randn_like(p)),
                model_json=mlp_model_json("ia3-mlp", [{"name": "default", "path": ".", "peft_type": "IA3",
                                                       "target_modules": ["fc1", "fc2"],
                                                       "feedforward_modules": ["fc2"]}],
                                          ["IA3 vectors set to 1 + 0.5*N(0,1). fc1 (not feed-forward): "
                                           "ia3_l [10,1] scales fc1's OUTPUT including its bias: "
                                           "y = (x@W.T + b) * l. fc2 (feed-forward): ia3_l [1,10] scales "
                                           "fc2's INPUT: y = (x * l) @ W.T + b. Merge: fc1 W *= l (rows), "
                                           "b *= l; fc2 W *= l (columns), bias unchanged."]))


def make_mlp_bias_lora_only_fixture(out_root):
    """lora-mlp-bias-lora-only: bias="lora_only" on the lora-mlp base and inputs."""
    torch.manual_seed(11)
    x = torch.randn(4, 6)
    name = "lora-mlp-bias-lora-only"
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["fc1", "fc2"], init_lora_weights=False,
                     bias="lora_only")
    toy_fixture(out_root, name, "mlp", MLP, x, {"default": cfg}, seed=130,
                perturb=lambda pm: randomize(pm, "base_layer.bias", lambda p: p + 0.5 * torch.randn_like(p)),
                model_json=mlp_model_json(name, [lora_desc("default", ".", cfg)],
                                          ["bias='lora_only': only the biases of the layers LoRA wraps (fc1, "
                                           "fc2; not head) are trainable and saved, as "
                                           "base_model.model.<module>.base_layer.bias; both were perturbed by "
                                           "0.5*N(0,1). base_outputs use the ORIGINAL biases; PEFT's "
                                           "disable_adapter() does NOT restore them, see "
                                           "disabled_adapter_outputs."]))


def make_conv_fixture(out_root):
    torch.manual_seed(21)
    x = torch.randn(2, 3, 5, 5)
    cfg = LoraConfig(r=2, lora_alpha=4, target_modules=["conv1", "conv2"], init_lora_weights=False)
    conv = lambda n, i, o, act: {"name": n, "torch_type": "Conv2d", "tfjs_type": "conv2d",
                                 "in_channels": i, "out_channels": o, "kernel_size": [3, 3],
                                 "stride": [1, 1], "padding": [1, 1], "tfjs_padding": "same",
                                 "dilation": [1, 1], "groups": 1, "bias": True, "activation": act}
    mj = {
        "fixture": "lora-conv",
        "kind": "conv",
        "input": {"shape": [None, 3, 5, 5], "layout": "NCHW (torch); io.json inputs_nhwc is [N,5,5,3] for tfjs",
                  "dtype": "float32"},
        "layers": [
            conv("conv1", 3, 4, "relu"),
            conv("conv2", 4, 5, "linear"),
            {"name": "pool", "type": "global_average_pooling_2d",
             "what": "mean over H and W (torch dims (2,3) of NCHW; tfjs GlobalAveragePooling2D on NHWC)",
             "has_weights": False},
            {"name": "head", "torch_type": "Linear", "tfjs_type": "dense", "in_features": 5, "out_features": 2,
             "bias": True, "activation": "linear"},
        ],
        "order": "x -> conv1 -> relu -> conv2 -> mean(H,W) -> head -> output (NO activation after conv2)",
        "output": {"shape": [None, 2], "what": "raw output of head"},
        "weights_file": "base_model.safetensors",
        "weights_layout": ("torch nn.Conv2d weight [out, in, kH, kW] (OIHW); tfjs conv2d kernel is "
                           "[kH, kW, in, out] = weight.permute(2,3,1,0). Zero padding 1 on each side "
                           "(= tfjs 'same' for k=3, stride 1). Linear: " + LINEAR_LAYOUT),
        "adapters": [dict(lora_desc("default", ".", cfg),
                          lora_modules=("lora_A = Conv2d(in, r, kernel 3x3, stride 1, padding 1, no bias); "
                                        "lora_B = Conv2d(r, out, kernel 1x1, no bias); "
                                        "y = conv(x) + scaling * lora_B(lora_A(x))"))],
        "notes": [],
        "versions": VERSIONS,
    }
    toy_fixture(out_root, "lora-conv", "conv", ConvNet, x, {"default": cfg}, seed=130, model_json=mj,
                extra_io={"inputs_nhwc": tolist(x.permute(0, 2, 3, 1))})


def make_embedding_fixture(out_root):
    torch.manual_seed(31)
    ids = torch.randint(0, 20, (3, 5))
    cfg = LoraConfig(r=3, lora_alpha=6, target_modules=["embed"], init_lora_weights=False)
    mj = {
        "fixture": "lora-embedding",
        "kind": "embedding",
        "input": {"shape": [None, 5], "dtype": "int64 token ids in [0, 20)"},
        "layers": [
            {"name": "embed", "torch_type": "Embedding", "tfjs_type": "embedding", "num_embeddings": 20,
             "embedding_dim": 6, "padding_idx": None},
            {"name": "pool", "type": "mean", "what": "mean over the sequence axis (axis 1 of [batch, seq, 6])",
             "has_weights": False},
            {"name": "head", "torch_type": "Linear", "tfjs_type": "dense", "in_features": 6, "out_features": 2,
             "bias": True, "activation": "linear"},
        ],
        "order": "ids -> embed -> mean(axis=1) -> head -> output",
        "output": {"shape": [None, 2], "what": "raw output of head"},
        "weights_file": "base_model.safetensors",
        "weights_layout": ("torch nn.Embedding weight [num_embeddings, embedding_dim] = [20, 6] "
                           "(same as tfjs embeddings). Linear: " + LINEAR_LAYOUT),
        "adapters": [dict(lora_desc("default", ".", cfg),
                          lora_modules=("lora_embedding_A [r, vocab] = [3, 20], lora_embedding_B [dim, r] = "
                                        "[6, 3] (keys without '.weight'); y = E[ids] + scaling * "
                                        "(A.T[ids] @ B.T); merged table E + scaling * (B @ A).T"))],
        "notes": ["init_lora_weights=False: both lora_embedding_A and _B are random (PEFT's default init "
                  "would make A zeros)."],
        "versions": VERSIONS,
    }
    toy_fixture(out_root, "lora-embedding", "embedding", EmbedNet, ids, {"default": cfg}, seed=140,
                model_json=mj, input_dtype="int64")


# ----------------------------------------------------------------------------- transformers fixtures
TOKENS = {
    "input_ids": [[5, 12, 7, 33, 41, 2, 9, 18], [3, 44, 21, 8, 30, 0, 0, 0]],
    "attention_mask": [[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0, 0]],
}


def bert_config():
    from transformers import BertConfig

    return BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=32, num_labels=2, pad_token_id=0,
                      initializer_range=0.2)


def make_bert(out_dir):
    from transformers import BertForSequenceClassification

    torch.manual_seed(BASE_SEED["bert"])
    cfg = bert_config()
    cfg._attn_implementation = "eager"
    model = BertForSequenceClassification(cfg).eval()
    model.save_pretrained(out_dir)
    save_state_dict(model, os.path.join(out_dir, "base_model.safetensors"))
    return model


@torch.no_grad()
def bert_outputs(model, ids, mask, inputs_embeds=None):
    kw = {"inputs_embeds": inputs_embeds} if inputs_embeds is not None else {"input_ids": ids}
    enc = model.bert(attention_mask=mask, **kw)
    logits = model.classifier(enc.pooler_output)
    return {"logits": tolist(logits), "pooler_output": tolist(enc.pooler_output),
            "last_hidden_state": tolist(enc.last_hidden_state)}


def bert_model_json(fixture, extra):
    d = {
        "fixture": fixture,
        "kind": "hf-bert-seq-cls",
        "hf_class": "BertForSequenceClassification",
        "config": "config.json (transformers save_pretrained); weights: model.safetensors (save_pretrained) "
                  "== base_model.safetensors (torch state_dict), same keys",
        "architecture": {
            "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
            "head_dim": 8, "intermediate_size": 32, "max_position_embeddings": 32, "type_vocab_size": 2,
            "num_labels": 2, "hidden_act": "gelu (exact, erf-based: 0.5*x*(1+erf(x/sqrt(2))))",
            "layer_norm_eps": 1e-12, "initializer_range": 0.2, "pad_token_id": 0,
            "position_embedding_type": "absolute",
        },
        "order": [
            "embeddings = word_embeddings[input_ids] + position_embeddings[0..T-1] + token_type_embeddings[0]",
            "embeddings.LayerNorm (eps 1e-12)",
            "per layer (post-LN): q,k,v = Linear(16->16) each, 2 heads of 8; scores = q@k.T/sqrt(8) + mask "
            "(mask: 0 where attention_mask=1, float32 min where 0, on KEYS); softmax; ctx @ v; "
            "attention.output.dense Linear(16->16); attention.output.LayerNorm(ctx_out + x); "
            "intermediate.dense Linear(16->32) + gelu; output.dense Linear(32->16); output.LayerNorm(h + attn_out)",
            "pooler: tanh(pooler.dense(last_hidden_state[:, 0]))",
            "classifier: Linear(16->2) on pooled output (dropout off in eval)",
        ],
        "weights_layout": LINEAR_LAYOUT,
        "token_type_ids": "not passed: all zeros",
        "compared_outputs": {
            "logits": "[batch, 2] classifier output",
            "pooler_output": "[batch, 16] tanh(pooler.dense(h[:,0]))",
            "last_hidden_state": "[batch, T, 16] encoder output (all positions, padded ones included; "
                                 "padded positions are deterministic but only non-padded rows are meaningful)",
        },
        "attn_implementation": "eager",
        "versions": VERSIONS,
    }
    d.update(extra)
    return d


def make_tiny_bert(out_root):
    out = fresh_dir(os.path.join(out_root, "tiny-bert"))
    model = make_bert(out)
    ids = torch.tensor(TOKENS["input_ids"])
    mask = torch.tensor(TOKENS["attention_mask"])
    outs = bert_outputs(model, ids, mask)
    rebuilt = build_base_after_model_json(out, bert_model_json("tiny-bert", {}))
    assert_close("tiny-bert rebuilt", bert_outputs(rebuilt, ids, mask), outs, 0.0)
    with torch.no_grad():
        assert_close("tiny-bert logits", tolist(model(input_ids=ids, attention_mask=mask).logits),
                     outs["logits"], 1e-6)
    write_json(os.path.join(out, "io.json"), {
        "description": "tiny random BertForSequenceClassification, eval mode, float32",
        "inputs": TOKENS, "base_outputs": outs, "tolerance": {"atol": ATOL}, "versions": VERSIONS})
    print("wrote tiny-bert")
    return outs


def build_base_after_model_json(out, mj):
    write_json(os.path.join(out, "model.json"), mj, compact_values=False)
    return build_base(out)


def make_prompt_tuning_bert(out_root, tiny_bert_outs):
    name = "prompt-tuning-bert"
    out = fresh_dir(os.path.join(out_root, name))
    model = make_bert(out)
    ids = torch.tensor(TOKENS["input_ids"])
    mask = torch.tensor(TOKENS["attention_mask"])
    nvt = 3
    mj = bert_model_json(name, {
        "adapters": [{"name": "default", "path": ".", "peft_type": "PROMPT_TUNING", "task_type": "SEQ_CLS",
                      "num_virtual_tokens": nvt, "token_dim": 16, "prompt_tuning_init": "RANDOM"}],
        "prompt_tuning": {
            "how": ("inputs_embeds = concat([prompt_embeddings (3x16, same for every batch row), "
                    "word_embeddings[input_ids]], axis=1); attention_mask = concat([ones(batch,3), "
                    "attention_mask], axis=1); the BERT then runs on T+3 positions"),
            "position_ids": ("ABSOLUTE positions 0..T+2 over the concatenated sequence: virtual tokens get "
                             "position_embeddings[0..2], real tokens position_embeddings[3..T+2] (PEFT does "
                             "not pass position_ids; BertEmbeddings uses arange). Token type 0 everywhere. "
                             "Position + token-type embeddings and the embeddings LayerNorm ARE applied to "
                             "the virtual tokens."),
            "pooling": ("pooler/classifier read position 0, which is now the FIRST VIRTUAL TOKEN (not the "
                        "first real token)"),
            "compared_outputs": ("adapter_outputs.logits [batch,2] (what PeftModelForSequenceClassification "
                                 "returns), .pooler_output [batch,16], .last_hidden_state [batch, 3+T, 16] "
                                 "(first 3 rows are the virtual tokens)"),
            "saved_keys": ("prompt_embeddings [3,16]; plus base_model.classifier.weight [2,16] and "
                           "base_model.classifier.bias [2]: task_type SEQ_CLS makes PEFT add the classifier "
                           "to modules_to_save automatically; the copy is UNCHANGED from the base here"),
        },
    })
    write_json(os.path.join(out, "model.json"), mj, compact_values=False)
    base_outs = bert_outputs(model, ids, mask)
    assert_close("prompt-tuning base == tiny-bert", base_outs, tiny_bert_outs, 0.0)

    torch.manual_seed(150)
    pcfg = PromptTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=nvt,
                              prompt_tuning_init=PromptTuningInit.RANDOM)
    pm = get_peft_model(model, pcfg).eval()
    with torch.no_grad():
        peft_out = pm(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        # NB: pm.disable_adapter() crashes in peft 0.21 for prompt learning on a model without
        # prepare_inputs_for_generation (UnboundLocalError), so the base output is the bare model's.
        disabled_logits = model(input_ids=ids, attention_mask=mask).logits
        prompts = pm.get_prompt(batch_size=ids.shape[0])
        embeds = torch.cat([prompts, model.bert.embeddings.word_embeddings(ids)], dim=1)
        full_mask = torch.cat([torch.ones(ids.shape[0], nvt, dtype=mask.dtype), mask], dim=1)
    manual = bert_outputs(model, None, full_mask, inputs_embeds=embeds)
    assert_close("prompt manual logits", tolist(peft_out.logits), manual["logits"], 1e-6)
    assert_close("prompt manual hidden", tolist(peft_out.hidden_states[-1]), manual["last_hidden_state"], 1e-6)
    assert_close("prompt disabled", tolist(disabled_logits), base_outs["logits"], 1e-6)
    # absolute positions: passing explicit arange(T+3) gives the same result
    with torch.no_grad():
        pos = torch.arange(embeds.shape[1]).unsqueeze(0).expand(ids.shape[0], -1)
        explicit = model(inputs_embeds=embeds, attention_mask=full_mask, position_ids=pos).logits
    assert_close("prompt absolute positions", tolist(explicit), manual["logits"], 1e-6)
    if max_diff(manual["logits"], base_outs["logits"]) < 1e-3:
        raise AssertionError("prompt tuning is a no-op")

    pm.save_pretrained(out)
    from transformers import BertForSequenceClassification  # noqa: F401

    loaded = PeftModel.from_pretrained(build_base(out), out)
    with torch.no_grad():
        assert_close("prompt reload", tolist(loaded(input_ids=ids, attention_mask=mask).logits),
                     manual["logits"], 1e-6)
    write_json(os.path.join(out, "io.json"), {
        "description": ("tiny BERT (identical to fixtures/tiny-bert) + PEFT prompt tuning, 3 random virtual "
                        "tokens, task SEQ_CLS"),
        "inputs": TOKENS,
        "base_outputs": base_outs,
        "adapter_outputs": manual,
        "prompt_attention_mask": tolist(full_mask),
        "tolerance": {"atol": ATOL},
        "versions": VERSIONS,
    })
    print(f"wrote {name}")


def make_tiny_gpt2(out_root):
    from transformers import GPT2Config, GPT2LMHeadModel

    out = fresh_dir(os.path.join(out_root, "tiny-gpt2"))
    torch.manual_seed(BASE_SEED["gpt2"])
    cfg = GPT2Config(vocab_size=50, n_embd=16, n_layer=2, n_head=2, n_positions=32, bos_token_id=1,
                     eos_token_id=2, initializer_range=0.2, use_cache=False)
    cfg._attn_implementation = "eager"
    model = GPT2LMHeadModel(cfg).eval()
    model.save_pretrained(out)
    save_state_dict(model, os.path.join(out, "base_model.safetensors"))
    mj = {
        "fixture": "tiny-gpt2",
        "kind": "hf-gpt2-lm",
        "hf_class": "GPT2LMHeadModel",
        "config": ("config.json + model.safetensors from transformers save_pretrained. model.safetensors has NO "
                   "lm_head.weight (tied to transformer.wte.weight, tie_word_embeddings=true); "
                   "base_model.safetensors is the full torch state_dict and has both (equal values)."),
        "architecture": {
            "vocab_size": 50, "n_embd": 16, "n_layer": 2, "n_head": 2, "head_dim": 8, "n_positions": 32,
            "n_inner": 64, "activation_function": "gelu_new (tanh approximation: "
                                                  "0.5*x*(1+tanh(sqrt(2/pi)*(x+0.044715*x^3))))",
            "layer_norm_epsilon": 1e-5, "initializer_range": 0.2, "scale_attn_weights": True,
            "tie_word_embeddings": True,
        },
        "order": [
            "h = wte[input_ids] + wpe[position_ids]; position_ids = 0..T-1 (NOT derived from attention_mask; "
            "padding here is on the right so real tokens are unaffected)",
            "per block (pre-LN): a = ln_1(h); qkv = a @ c_attn.weight + c_attn.bias  (Conv1D: weight [in, out] "
            "= [16, 48], split into q,k,v of 16 each, 2 heads of 8); scores = q@k.T/sqrt(8), causal mask AND "
            "padding mask on keys (float32 min); softmax; ctx @ c_proj.weight [16,16] + bias; h = h + attn; "
            "m = ln_2(h); h = h + mlp.c_proj(gelu_new(mlp.c_fc(m)))  (c_fc [16,64], c_proj [64,16], Conv1D layout)",
            "last_hidden_state = ln_f(h)",
            "logits = last_hidden_state @ wte.weight.T  (tied lm_head, no bias)",
        ],
        "weights_layout": ("GPT-2 Conv1D weights are [in, out] (y = x @ W + b) -- already the tfjs Dense kernel "
                           "layout, NOT transposed like nn.Linear. lm_head.weight [50,16] is nn.Linear layout."),
        "compared_outputs": {"logits": "[batch, T, 50]", "last_hidden_state": "[batch, T, 16] after ln_f"},
        "attn_implementation": "eager",
        "versions": VERSIONS,
    }
    rebuilt = build_base_after_model_json(out, mj)
    ids = torch.tensor(TOKENS["input_ids"])
    mask = torch.tensor(TOKENS["attention_mask"])
    with torch.no_grad():
        o = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        pos = torch.arange(ids.shape[1]).unsqueeze(0).expand(ids.shape[0], -1)
        o_pos = model(input_ids=ids, attention_mask=mask, position_ids=pos)
        o_rebuilt = rebuilt(input_ids=ids, attention_mask=mask)
        last = model.transformer(input_ids=ids, attention_mask=mask).last_hidden_state
    assert_close("gpt2 default positions are arange", tolist(o_pos.logits), tolist(o.logits), 0.0)
    assert_close("gpt2 rebuilt", tolist(o_rebuilt.logits), tolist(o.logits), 0.0)
    assert_close("gpt2 hidden_states[-1] is after ln_f", tolist(o.hidden_states[-1]), tolist(last), 0.0)
    write_json(os.path.join(out, "io.json"), {
        "description": "tiny random GPT2LMHeadModel, eval mode, float32",
        "inputs": TOKENS,
        "base_outputs": {"logits": tolist(o.logits), "last_hidden_state": tolist(last)},
        "tolerance": {"atol": ATOL},
        "versions": VERSIONS,
    })
    print("wrote tiny-gpt2")


def make_prefix_tuning_gpt2(out_root):
    """PEFT prefix tuning (CAUSAL_LM, no projection) on fixtures/tiny-gpt2 (the base is not copied)."""
    name = "prefix-tuning-gpt2"
    out = fresh_dir(os.path.join(out_root, name))
    base_dir = os.path.join(out_root, "tiny-gpt2")
    with open(os.path.join(base_dir, "io.json")) as f:
        base_io = json.load(f)
    model = build_base(base_dir)
    ids = torch.tensor(TOKENS["input_ids"])
    mask = torch.tensor(TOKENS["attention_mask"])
    with torch.no_grad():
        base_logits = tolist(model(input_ids=ids, attention_mask=mask).logits)
    assert_close("prefix base == tiny-gpt2", base_logits, base_io["base_outputs"]["logits"], 0.0)

    nvt = 3
    torch.manual_seed(160)
    pcfg = PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=nvt)
    # Stable across --out folders: build_base records the folder it read, which PEFT copies into
    # adapter_config.json and its README.
    model.config.name_or_path = model.name_or_path = "fixtures/tiny-gpt2"
    pm = get_peft_model(model, pcfg).eval()
    batch, length = ids.shape
    full_mask = torch.cat([torch.ones(batch, nvt, dtype=mask.dtype), mask], dim=1)
    with torch.no_grad():
        peft_logits = pm(input_ids=ids, attention_mask=mask).logits
        table = pm.prompt_encoder["default"].embedding.weight  # [nvt, n_layer * 2 * n_embd]
        # What PEFT passes as past_key_values, rebuilt from the table: layer i's key prefix is columns
        # [2i*16, (2i+1)*16), its value prefix the next 16; each split into 2 heads of 8.
        kv = table.view(nvt, 2 * 2, 2, 8).permute(1, 2, 0, 3)  # [layers*2, heads, nvt, head_dim]

        def manual(start):
            from transformers import DynamicCache

            cache = DynamicCache()
            for i in range(2):
                cache.update(kv[2 * i].unsqueeze(0).expand(batch, -1, -1, -1),
                             kv[2 * i + 1].unsqueeze(0).expand(batch, -1, -1, -1), i)
            pos = (torch.arange(length) + start).unsqueeze(0).expand(batch, -1)
            return model(input_ids=ids, attention_mask=full_mask, past_key_values=cache, position_ids=pos).logits

        shifted = manual(nvt)
        from_zero = manual(0)
    assert_close("prefix manual (positions n..n+T-1)", tolist(shifted), tolist(peft_logits), 1e-6)
    position_gap = max_diff(tolist(from_zero), tolist(peft_logits))
    if position_gap < 1e-3:
        raise AssertionError("positions from 0 should differ from PEFT's")
    if max_diff(tolist(peft_logits), base_logits) < 1e-3:
        raise AssertionError("prefix tuning is a no-op")

    pm.save_pretrained(out)
    loaded = PeftModel.from_pretrained(build_base(base_dir), out).eval()
    with torch.no_grad():
        assert_close("prefix reload", tolist(loaded(input_ids=ids, attention_mask=mask).logits),
                     tolist(peft_logits), 1e-6)
    write_json(os.path.join(out, "model.json"), {
        "fixture": name,
        "kind": "hf-gpt2-lm",
        "base": "../tiny-gpt2 (config.json + model.safetensors; not copied here)",
        "adapters": [{"name": "default", "path": ".", "peft_type": "PREFIX_TUNING", "task_type": "CAUSAL_LM",
                      "num_virtual_tokens": nvt, "token_dim": 16, "num_layers": 2, "num_attention_heads": 2,
                      "prefix_projection": False}],
        "prefix_tuning": {
            "saved_keys": "prompt_embeddings [3, 64] = [num_virtual_tokens, num_layers * 2 * n_embd]",
            "layout": ("row t, layer i: key prefix = columns [2i*16, (2i+1)*16), value prefix = the next 16; "
                       "each 16 = 2 heads x 8 (head-major). PEFT: view(batch, 3, 4, 2, 8).permute(2, 0, 3, 1, 4)"
                       ".split(2) -> past_key_values[i] = (key [batch, 2, 3, 8], value [batch, 2, 3, 8])"),
            "attention": ("keys [prefix; tokens], values [prefix; values]; attention_mask = concat([ones(batch, 3), "
                          "attention_mask], 1); causal: every token sees all 3 prefixes and tokens up to itself"),
            "position_ids": ("SHIFTED: transformers numbers the tokens after the cached prefixes, so the real tokens "
                             "take wpe[3..T+2], not wpe[0..T-1] (PEFT passes no position_ids). Checked: explicit "
                             f"positions 3.. reproduce PEFT exactly; positions 0.. differ by {position_gap:.3f}."),
            "compared_outputs": "adapter_outputs.logits [batch, T, 50] (T = 8, no rows for the prefixes)",
        },
        "attn_implementation": "eager",
        "versions": VERSIONS,
    }, compact_values=False)
    write_json(os.path.join(out, "io.json"), {
        "description": ("tiny-gpt2 + PEFT prefix tuning (CAUSAL_LM), 3 random virtual tokens (N(0, 1) "
                        "nn.Embedding init), no prefix projection"),
        "inputs": TOKENS,
        "base_outputs": {"logits": base_logits},
        "adapter_outputs": {"logits": tolist(peft_logits)},
        "prefix_attention_mask": tolist(full_mask),
        "position_offset": nvt,
        "tolerance": {"atol": ATOL},
        "versions": VERSIONS,
    })
    print(f"wrote {name}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "fixtures"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    make_mlp_fixtures(args.out)
    make_mlp_bias_lora_only_fixture(args.out)
    make_conv_fixture(args.out)
    make_embedding_fixture(args.out)
    outs = make_tiny_bert(args.out)
    make_prompt_tuning_bert(args.out, outs)
    make_tiny_gpt2(args.out)
    make_prefix_tuning_gpt2(args.out)
    with open(os.path.join(args.out, "VERSIONS.json"), "w") as f:
        json.dump(VERSIONS, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
