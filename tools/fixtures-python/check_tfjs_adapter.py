#!/usr/bin/env python3
"""Reverse-direction interop check: does Hugging Face PEFT load an adapter folder
written by the TypeScript side, and does it compute the same outputs?

Usage (from the repository root):
    .venv-hf/bin/python tools/fixtures-python/check_tfjs_adapter.py FIXTURE_DIR ADAPTER_DIR
        [--adapter-name NAME] [--expect KEY] [--atol 1e-5]
    .venv-hf/bin/python tools/fixtures-python/check_tfjs_adapter.py --self-test [FIXTURES_ROOT]

It rebuilds the torch base model of FIXTURE_DIR from its base_model.safetensors
(+ model.json / config.json), loads ADAPTER_DIR with PeftModel.from_pretrained,
runs the fixture's io.json inputs and compares with:
  1. ADAPTER_DIR/expected_outputs.json if present: either the output itself (a
     nested list, or for transformers fixtures an object such as {"logits": ...}),
     or an object with "adapter_outputs" (and optionally "merged_outputs");
  2. otherwise the fixture's own io.json: adapter_outputs_by_name[--expect or the
     adapter folder's name] when that exists (two-adapter fixture), else adapter_outputs.
For LoRA and IA3 it also checks merge_and_unload() against the expected outputs, and
that the disabled adapter gives the fixture's base outputs. Prints the max abs diff
of each check and PASS/FAIL; exit status 0 only if everything passes.

--self-test runs the check on every fixture's own PEFT-written adapter folders, and
verifies that a corrupted copy of each adapter FAILS.
"""

from __future__ import annotations

import argparse
import contextlib
import io as _io
import copy
import glob
import json
import os
import shutil
import sys
import tempfile
import warnings

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_models import build_base, load_inputs  # noqa: E402

warnings.filterwarnings("ignore")
torch.set_num_threads(1)


def _quiet_transformers():
    try:
        import transformers

        transformers.logging.set_verbosity_error()
    except ImportError:
        pass


def max_abs_diff(actual, expected) -> float:
    a = torch.as_tensor(actual, dtype=torch.float64)
    e = torch.as_tensor(expected, dtype=torch.float64)
    if a.shape != e.shape:
        raise ValueError(f"shape mismatch: got {tuple(a.shape)}, expected {tuple(e.shape)}")
    return (a - e).abs().max().item()


@torch.no_grad()
def forward(model, args, kwargs, is_hf: bool):
    model.eval()
    if is_hf:
        out = model(*args, **kwargs, output_hidden_states=True)
        return {"logits": out.logits, "last_hidden_state": out.hidden_states[-1]}
    out = model(*args, **kwargs)
    return out


def compare(label, actual, expected, atol, results):
    """actual: tensor or {"logits": tensor}; expected: list or dict of lists."""
    if isinstance(expected, dict):
        keys = [k for k in expected if k in (actual if isinstance(actual, dict) else {})]
        if not keys:
            raise ValueError(f"{label}: expected outputs have none of the keys {list(actual)}")
        for k in keys:
            compare(f"{label}.{k}", actual[k], expected[k], atol, results)
        return
    if isinstance(actual, dict):
        actual = actual["logits"]
    try:
        d = max_abs_diff(actual, expected)
        ok = d <= atol
        msg = f"max abs diff {d:.3e}"
    except ValueError as e:
        ok, msg = False, str(e)
    results.append(ok)
    print(f"  {'PASS' if ok else 'FAIL'}  {label}: {msg} (atol {atol:g})")


def check(fixture_dir, adapter_dir, adapter_name=None, expect_key=None, atol=1e-5) -> bool:
    from peft import PeftConfig, PeftModel

    _quiet_transformers()
    fixture_dir = os.path.abspath(fixture_dir)
    adapter_dir = os.path.abspath(adapter_dir)
    with open(os.path.join(fixture_dir, "io.json")) as f:
        io = json.load(f)
    with open(os.path.join(fixture_dir, "model.json")) as f:
        is_hf = json.load(f)["kind"].startswith("hf-")
    args, kwargs = load_inputs(io)

    # expected outputs
    exp_file = os.path.join(adapter_dir, "expected_outputs.json")
    expected_merged = None
    expected_disabled = None
    if os.path.exists(exp_file):
        with open(exp_file) as f:
            exp = json.load(f)
        if isinstance(exp, dict) and "adapter_outputs" in exp:
            expected, expected_merged = exp["adapter_outputs"], exp.get("merged_outputs")
            # bias "all"/"lora_only": PEFT's disable_adapter() keeps the trained biases
            expected_disabled = exp.get("peft_disabled_outputs")
        else:
            expected = exp
        source = exp_file
    else:
        key = expect_key or os.path.basename(adapter_dir.rstrip("/"))
        by_name = io.get("adapter_outputs_by_name", {})
        if key in by_name:
            expected, source = by_name[key], f"{fixture_dir}/io.json adapter_outputs_by_name[{key!r}]"
        else:
            expected, source = io["adapter_outputs"], f"{fixture_dir}/io.json adapter_outputs"
    if expected_merged is None:
        expected_merged = expected

    name = adapter_name or "default"
    config = PeftConfig.from_pretrained(adapter_dir)
    print(f"check {adapter_dir}\n  fixture {fixture_dir}; peft_type {config.peft_type.value}; "
          f"expected from {source}")
    results: list[bool] = []
    try:
        model = PeftModel.from_pretrained(build_base(fixture_dir), adapter_dir, adapter_name=name)
    except Exception as e:  # noqa: BLE001 -- report any load error as FAIL
        print(f"  FAIL  PeftModel.from_pretrained raised {type(e).__name__}: {e}")
        return False

    # key names / shapes / dtype exactly as PEFT would write them for this config
    from peft import get_peft_model_state_dict

    want = get_peft_model_state_dict(model, adapter_name=name)
    weights_path = os.path.join(adapter_dir, "adapter_model.safetensors")
    got = load_file(weights_path) if os.path.exists(weights_path) else {}
    problems = [f"missing {k}" for k in sorted(set(want) - set(got))]
    problems += [f"unexpected {k}" for k in sorted(set(got) - set(want))]
    problems += [f"{k}: shape {tuple(got[k].shape)} != {tuple(want[k].shape)}"
                 for k in sorted(set(want) & set(got)) if got[k].shape != want[k].shape]
    problems += [f"{k}: dtype {got[k].dtype}" for k in sorted(got) if got[k].dtype != torch.float32]
    results.append(not problems)
    print(f"  {'FAIL' if problems else 'PASS'}  adapter_model.safetensors keys: {len(got)} tensors"
          + ("".join(f"\n          {p}" for p in problems) if problems else ", same names/shapes as PEFT writes"))

    compare("adapter outputs", forward(model, args, kwargs, is_hf), expected, atol, results)

    peft_type = config.peft_type.value
    if peft_type in ("LORA", "IA3"):
        with model.disable_adapter():
            disabled = forward(model, args, kwargs, is_hf)
        if expected_disabled is not None:
            compare("adapter disabled == base with the adapter's biases", disabled, expected_disabled, atol, results)
        else:
            compare("adapter disabled == base", disabled,
                    io.get("disabled_adapter_outputs", io["base_outputs"]), atol, results)
        merged = copy.deepcopy(model).merge_and_unload()
        compare("merge_and_unload outputs", forward(merged, args, kwargs, is_hf), expected_merged, atol, results)

    ok = all(results)
    print(f"  => {'PASS' if ok else 'FAIL'}")
    return ok


def adapter_dirs(fixture_dir):
    """(adapter_dir, adapter_name) pairs of a fixture: the root and any subfolder adapters."""
    out = []
    if os.path.exists(os.path.join(fixture_dir, "adapter_config.json")):
        out.append((fixture_dir, None))
    for cfg in sorted(glob.glob(os.path.join(fixture_dir, "*", "adapter_config.json"))):
        sub = os.path.dirname(cfg)
        out.append((sub, os.path.basename(sub)))
    return out


def self_test(root) -> bool:
    ok = True
    for fixture in sorted(glob.glob(os.path.join(root, "*", "io.json"))):
        fdir = os.path.dirname(fixture)
        for adir, name in adapter_dirs(fdir):
            ok &= check(fdir, adir, adapter_name=name)
            # negative control: a corrupted copy must FAIL
            with tempfile.TemporaryDirectory() as tmp:
                bad = os.path.join(tmp, name or "default")
                shutil.copytree(adir, bad)
                for sub in os.listdir(bad):
                    if os.path.isdir(os.path.join(bad, sub)):
                        shutil.rmtree(os.path.join(bad, sub))
                path = os.path.join(bad, "adapter_model.safetensors")
                tensors = load_file(path)
                first = sorted(tensors)[0]
                tensors[first] = tensors[first] + 0.05
                save_file(tensors, path, metadata={"format": "pt"})
                print(f"  (negative control: {first} += 0.05; this must FAIL)")
                buf = _io.StringIO()
                with contextlib.redirect_stdout(buf):
                    bad_ok = check(fdir, bad, adapter_name=name)
                if bad_ok:
                    print("  FAIL  negative control passed: the check does not see the corruption")
                    ok = False
                else:
                    print("  PASS  negative control failed as it should")
    print(f"\nSELF-TEST {'PASS' if ok else 'FAIL'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fixture_dir", nargs="?")
    ap.add_argument("adapter_dir", nargs="?")
    ap.add_argument("--adapter-name", default=None, help="name to load the adapter under (default 'default')")
    ap.add_argument("--expect", default=None,
                    help="key of io.json adapter_outputs_by_name to compare with (default: the adapter "
                         "folder's name if it is a key there, else io.json adapter_outputs)")
    ap.add_argument("--atol", type=float, default=1e-5)
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    if a.self_test:
        root = a.fixture_dir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures")
        sys.exit(0 if self_test(root) else 1)
    if not (a.fixture_dir and a.adapter_dir):
        ap.error("FIXTURE_DIR and ADAPTER_DIR are required (or --self-test)")
    sys.exit(0 if check(a.fixture_dir, a.adapter_dir, a.adapter_name, a.expect, a.atol) else 1)


if __name__ == "__main__":
    main()
