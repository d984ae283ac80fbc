#!/usr/bin/env python3
"""Hugging Face PEFT loads a multi-adapter folder written by tfjs-peft and, with every active set
of adapters its expected_outputs.json lists (e.g. "default+other": both active, deltas summed),
gives tfjs's outputs, unmerged and after merge_and_unload. Complements
tools/fixtures-python/check_tfjs_adapter.py, which checks one adapter at a time.

Usage (repository root):
    .venv-hf/bin/python tools/interop/check_tfjs_multi_adapter.py FIXTURE_DIR ADAPTER_DIR [--atol 1e-5]
ADAPTER_DIR/expected_outputs.json: {"adapters": [{"name", "subfolder"}], "outputs_by_active": {...},
"merged_outputs_by_active": {...}}. Exit status 0 only if every check passes.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures-python"))
from fixture_models import build_base, load_inputs  # noqa: E402

warnings.filterwarnings("ignore")
torch.set_num_threads(1)


def main() -> int:
    from peft import PeftModel

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fixture_dir")
    ap.add_argument("adapter_dir")
    ap.add_argument("--atol", type=float, default=1e-5)
    a = ap.parse_args()
    fixture_dir, adapter_dir = os.path.abspath(a.fixture_dir), os.path.abspath(a.adapter_dir)
    with open(os.path.join(fixture_dir, "io.json")) as f:
        args, kwargs = load_inputs(json.load(f))
    with open(os.path.join(adapter_dir, "expected_outputs.json")) as f:
        exp = json.load(f)
    adapters = exp["adapters"]
    print(f"check (multi-adapter) {adapter_dir}\n  fixture {fixture_dir}; adapters "
          + ", ".join(f"{x['name']} ({x['subfolder'] or 'root'})" for x in adapters))

    def folder(x):
        return os.path.join(adapter_dir, x["subfolder"]) if x["subfolder"] else adapter_dir

    model = PeftModel.from_pretrained(build_base(fixture_dir), folder(adapters[0]), adapter_name=adapters[0]["name"])
    for x in adapters[1:]:
        model.load_adapter(folder(x), adapter_name=x["name"])
    model.eval()
    results = []

    def compare(label, actual, expected):
        d = (actual.double() - torch.tensor(expected, dtype=torch.float64)).abs().max().item()
        ok = d <= a.atol
        results.append(ok)
        print(f"  {'PASS' if ok else 'FAIL'}  {label}: max abs diff {d:.3e} (atol {a.atol:g})")

    with torch.no_grad():
        for key, expected in exp["outputs_by_active"].items():
            names = key.split("+")
            model.base_model.set_adapter(names if len(names) > 1 else names[0])
            compare(f"active {names}", model(*args, **kwargs), expected)
            merged = copy.deepcopy(model).merge_and_unload(adapter_names=names)
            compare(f"active {names}, merge_and_unload", merged(*args, **kwargs),
                    exp["merged_outputs_by_active"][key])
    ok = all(results)
    print(f"  => {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
