"""Torch base models behind the interop fixtures, shared by make_fixtures.py and
check_tfjs_adapter.py.

Each toy model is rebuilt from the fixture folder's `model.json` ("kind") and its
`base_model.safetensors`; the transformers models from `config.json` +
`base_model.safetensors`.
"""

from __future__ import annotations

import json
import os

import torch
import torch.nn as nn
from safetensors.torch import load_file


class MLP(nn.Module):
    """fc1 Linear(6->10), ReLU, fc2 Linear(10->8), ReLU, head Linear(8->3)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 10)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(10, 8)
        self.relu2 = nn.ReLU()
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.relu2(self.fc2(self.relu1(self.fc1(x)))))


class ConvNet(nn.Module):
    """conv1 Conv2d(3->4,k3,p1), ReLU, conv2 Conv2d(4->5,k3,p1), mean over H,W, head Linear(5->2).

    Note: no activation after conv2 (as specified)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, kernel_size=3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 5, kernel_size=3, padding=1)
        self.head = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: NCHW
        h = self.conv2(self.relu1(self.conv1(x)))
        return self.head(h.mean(dim=(2, 3)))


class EmbedNet(nn.Module):
    """embed Embedding(20->6), mean over the sequence axis (dim 1), head Linear(6->2)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 6)
        self.head = nn.Linear(6, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # ids: [batch, seq] int64
        return self.head(self.embed(ids).mean(dim=1))


TOY_KINDS = {"mlp": MLP, "conv": ConvNet, "embedding": EmbedNet}
HF_KINDS = ("hf-bert-seq-cls", "hf-gpt2-lm")


def hf_class(kind: str):
    from transformers import BertForSequenceClassification, GPT2LMHeadModel

    return {"hf-bert-seq-cls": BertForSequenceClassification, "hf-gpt2-lm": GPT2LMHeadModel}[kind]


def build_base(fixture_dir: str) -> torch.nn.Module:
    """Rebuild the torch base model of a fixture from its committed files."""
    with open(os.path.join(fixture_dir, "model.json")) as f:
        desc = json.load(f)
    kind = desc["kind"]
    state = load_file(os.path.join(fixture_dir, "base_model.safetensors"))
    if kind in TOY_KINDS:
        model = TOY_KINDS[kind]()
    elif kind in HF_KINDS:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(fixture_dir)
        config._attn_implementation = "eager"
        model = hf_class(kind)(config)
    else:
        raise ValueError(f"unknown model kind {kind!r} in {fixture_dir}/model.json")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"state_dict mismatch: missing={missing} unexpected={unexpected}")
    model.eval()
    return model


def load_inputs(io: dict):
    """Turn io.json `inputs` into the positional/keyword args of the torch forward."""
    inputs = io["inputs"]
    if isinstance(inputs, dict):  # transformers models
        return (), {
            "input_ids": torch.tensor(inputs["input_ids"], dtype=torch.long),
            "attention_mask": torch.tensor(inputs["attention_mask"], dtype=torch.long),
        }
    dtype = torch.long if io.get("input_dtype") == "int64" else torch.float32
    return (torch.tensor(inputs, dtype=dtype),), {}
