"""PyTorch + Hugging Face PEFT reference for `pnpm bench`: the same shapes, steps and loss.

Run with the local reference environment (CI has no Python; the Node bench only reads the JSON):
    .venv-hf/bin/python tools/bench/torch_reference.py --out tools/bench/results/torch-latest.json

Model: the architecture of the Universal Sentence Encoder lite as @tfjs-peft/models builds it
(packages/peft-models/src/use-lite/use-lite-config.ts): embeddings 8002x256 (x2, plus sinusoidal
positions), two pre-norm blocks (block 0: q/k/v 256->256, 4 heads, a residual projection 256->512,
attention output 256->512; block 1: q/k/v 512->512, 4 heads, output 512->512), feed-forward
512->1536 relu ->512, masked mean pooling, pooler 512->512 tanh, L2 normalisation, and a 2-class
softmax `classifier` head. Weights are random (speed does not depend on their values). Layers carry
the tfjs layer names' last segment (query, key, value, ...) so PEFT's target_modules match the same
layers as the tfjs LoraConfig. Steps: Adam, cross-entropy of the softmax output, batch 16 x 64.
"""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import time


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--length", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--infer-runs", type=int, default=20)
    p.add_argument("--device", default="cpu", help="cpu, or cuda (the GPU machine: times include torch.cuda.synchronize())")
    p.add_argument("--matmul-size", type=int, default=2048)
    return p.parse_args()


args = parse_args()
import torch  # noqa: E402  (after argparse so --help is instant)
from torch import nn  # noqa: E402

torch.set_num_threads(args.threads)
torch.set_num_interop_threads(1)
DEVICE = torch.device(args.device)
CUDA = DEVICE.type == "cuda"
import peft  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402

VOCAB, EMB, FFN, HIDDEN = 8002, 256, 1536, 512
BLOCKS = [dict(width_in=256, attention=256, heads=4, scale=0.125), dict(width_in=512, attention=512, heads=4, scale=1 / math.sqrt(128))]


def sinusoidal(length, width):
    half = width // 2
    position = torch.arange(length, dtype=torch.float32)[:, None]
    inv = torch.exp(-math.log(1e4) * torch.arange(half, dtype=torch.float32) / max(half - 1, 1))
    angles = position * inv[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class Attention(nn.Module):
    def __init__(self, width_in, attention, heads, scale):
        super().__init__()
        self.layer_norm = nn.LayerNorm(width_in, eps=1e-6)
        self.query = nn.Linear(width_in, attention)
        self.key = nn.Linear(width_in, attention)
        self.value = nn.Linear(width_in, attention)
        self.attention_output = nn.Linear(attention, HIDDEN)
        self.residual_projection = nn.Linear(width_in, HIDDEN) if width_in != HIDDEN else None
        self.heads, self.scale = heads, scale

    def forward(self, x, bias):
        b, l, _ = x.shape
        h = self.layer_norm(x)
        split = lambda t: t.view(b, l, self.heads, -1).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.query(h)) * self.scale, split(self.key(h)), split(self.value(h))
        scores = q @ k.transpose(-1, -2) + bias
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, l, -1)
        residual = self.residual_projection(x) if self.residual_projection is not None else x
        return residual + self.attention_output(context)


class FeedForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer_norm = nn.LayerNorm(HIDDEN, eps=1e-6)
        self.intermediate = nn.Linear(HIDDEN, FFN)
        self.output = nn.Linear(FFN, HIDDEN)

    def forward(self, x):
        return x + self.output(torch.relu(self.intermediate(self.layer_norm(x))))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attention = Attention(**cfg)
        self.ffn = FeedForward()

    def forward(self, x, bias):
        return self.ffn(self.attention(x, bias))


class UseLiteClassifier(nn.Module):
    def __init__(self, max_len):
        super().__init__()
        self.embeddings = nn.Embedding(VOCAB, EMB)
        self.register_buffer("positions", sinusoidal(max_len, EMB), persistent=False)
        self.layers = nn.ModuleList([Block(c) for c in BLOCKS])
        self.pooler = nn.Linear(HIDDEN, HIDDEN)
        self.classifier = nn.Linear(HIDDEN, 2)

    def forward(self, ids, mask):
        x = 2 * self.embeddings(ids) + self.positions[: ids.shape[1]]
        bias = ((1 - mask) * -1e9)[:, None, None, :]
        for block in self.layers:
            x = block(x, bias)
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        features = nn.functional.normalize(torch.tanh(self.pooler(pooled)), dim=-1)
        return self.classifier(features).softmax(-1)


def synchronize():
    # CUDA launches are asynchronous: a step's time ends when the GPU has finished it.
    if CUDA:
        torch.cuda.synchronize()


def median_ms(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    synchronize()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), times


def main():
    torch.manual_seed(0)
    ids = torch.randint(0, 8000, (args.batch, args.length)).to(DEVICE)
    mask = torch.ones(args.batch, args.length, device=DEVICE)
    labels = nn.functional.one_hot(torch.arange(args.batch) % 2, 2).float().to(DEVICE)

    def loss_fn(model):
        probs = model(ids, mask)
        return -(labels * torch.log(probs + 1e-7)).sum(-1).mean()

    def train(model):
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=1e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model)
            loss.backward()
            opt.step()

        if CUDA:
            torch.cuda.reset_peak_memory_stats()
        ms, runs = median_ms(step, args.steps, args.warmup)
        result = dict(medianMs=ms, runs=runs, trainableParams=sum(p.numel() for p in params))
        if CUDA:
            result["peakBytes"] = torch.cuda.max_memory_allocated()
        return result

    results = {}
    full = UseLiteClassifier(max(128, args.length)).to(DEVICE)
    results["full"] = train(full)
    print(f"[torch] full fine-tuning step {results['full']['medianMs']:.1f} ms", flush=True)

    lora_model = get_peft_model(
        UseLiteClassifier(max(128, args.length)).to(DEVICE),
        LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"], modules_to_save=["classifier"]),
    )
    results["lora"] = train(lora_model)
    print(f"[torch] LoRA r8 q,v step {results['lora']['medianMs']:.1f} ms", flush=True)

    # Inference: base vs LoRA unmerged vs merged, interleaved round by round like the tfjs bench.
    base = UseLiteClassifier(max(128, args.length)).to(DEVICE).eval()
    lora_model.eval()
    for name, p in lora_model.named_parameters():
        if "lora_B" in name:
            nn.init.normal_(p, std=0.01)

    def infer(model):
        def run():
            with torch.inference_mode():
                model(ids, mask)
            synchronize()

        return run

    def interleaved(other):
        b, o = [], []
        for _ in range(args.warmup):
            infer(base)()
            other()
        for i in range(args.infer_runs):
            pair = [(b, infer(base)), (o, other)]
            for bucket, fn in pair if i % 2 == 0 else reversed(pair):
                start = time.perf_counter()
                fn()
                bucket.append((time.perf_counter() - start) * 1000)
        return b, o

    b1, unmerged = interleaved(infer(lora_model))
    lora_model.merge_adapter()
    b2, merged = interleaved(infer(lora_model))
    lora_model.unmerge_adapter()
    inference = dict(
        baseMs=statistics.median(b1 + b2),
        unmergedMs=statistics.median(unmerged),
        mergedMs=statistics.median(merged),
        runs=dict(baseWithUnmerged=b1, unmerged=unmerged, baseWithMerged=b2, merged=merged),
    )
    print(f"[torch] inference base {inference['baseMs']:.1f} ms, unmerged {inference['unmergedMs']:.1f}, merged {inference['mergedMs']:.1f}", flush=True)

    n = args.matmul_size
    a, bm = torch.randn(n, n, device=DEVICE), torch.randn(n, n, device=DEVICE)
    mm_ms, mm_runs = median_ms(lambda: a @ bm, 7, 2)
    print(f"[torch] matMul {n}^3 {2 * n**3 / mm_ms / 1e6:.1f} GFLOP/s", flush=True)

    out = dict(
        torch=torch.__version__,
        peft=peft.__version__,
        threads=torch.get_num_threads(),
        batch=args.batch,
        length=args.length,
        steps=args.steps,
        warmup=args.warmup,
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        device=torch.cuda.get_device_name() if CUDA else "cpu",
        machine=f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        loadAverage=list(os.getloadavg()),
        matMul=dict(n=n, ms=mm_ms, gflops=2 * n**3 / mm_ms / 1e6, runs=mm_runs),
        methods=results,
        inference=inference,
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
