"""The gpt model kind against its PyTorch anchor, on the same text and config.

Usage: python3 scripts/gpt-vs-torch.py CONFIG.json [--anchor PATH] [--workers N] [--threads N] [--skip-dptrain]

CONFIG is a dptrain config (model.kind gpt, data.name text with character tokens). The script
  1. trains it with dptrain (`node dist/cli/main.js train --config CONFIG --workers N`), and reads
     the run's summary (validation loss, tokens/s);
  2. trains the anchor's GPT (the Block/GPT classes of /work/shared/anchors/gpt_char_torch.py:
     pre-LN, GELU MLP, tied head, biases: the gpt kind's shape) on the same windows of the same
     text, with the config's Adam, learning-rate schedule, clipping, batch and steps, nanoGPT's
     initialization (as the gpt kind), PyTorch CPU with --threads threads (default: the workers);
  3. evaluates both on the same held-out windows and prints validation loss in bits per character
     and training tokens/s (evaluation excluded), one line each.
The two differ in initial draws and batch order (each seeded its own way), not in the recipe.
Run it on a quiet machine, or read the tokens/s as a ratio measured under the same load.
"""
import argparse, importlib.util, json, math, os, subprocess, sys, tempfile, time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def load_anchor(path):
    spec = importlib.util.spec_from_file_location("gpt_anchor", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def windows(ids, seq, most=None):
    """As shared/datasets/text.ts: windows seq apart, at most `most`, evenly spaced."""
    total = max(0, (len(ids) - 1) // seq)
    n = total if most is None else min(total, most)
    starts = [(r if n == total else (r * total) // n) * seq for r in range(n)]
    x = torch.stack([ids[s:s + seq] for s in starts])
    y = torch.stack([ids[s + 1:s + seq + 1] for s in starts])
    return x, y


def learning_rate(o, step, total):
    """As coordinator/optimizers/schedule.ts."""
    if step < o["warmupSteps"]:
        return o["lr"] * (step + 1) / o["warmupSteps"]
    if o["schedule"] == "constant":
        return o["lr"]
    span = max(1, total - o["warmupSteps"] - 1)
    progress = min(1.0, (step - o["warmupSteps"]) / span)
    floor = o["lr"] * o["minLrRatio"]
    return floor + (o["lr"] - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def nanogpt_init(model, layers):
    """N(0, 0.02) for weights and embeddings, residual projections / sqrt(2·layers), zero biases."""
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            torch.nn.init.zeros_(p)
        elif ".ln" in name or name.startswith("ln"):
            torch.nn.init.ones_(p)
        else:
            std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "out.weight")) else 0.02
            torch.nn.init.normal_(p, 0.0, std)


def run_dptrain(config_path, workers):
    out = tempfile.mkdtemp(prefix="gpt-vs-torch-")
    cmd = ["node", os.path.join(HERE, "..", "dist", "cli", "main.js"), "train", "--config", config_path, "--workers", str(workers), "--out", out]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "summary.json")) as f:
        s = json.load(f)
    return s["testLoss"] / math.log(2), s["tokensPerSec"], s["params"], out


def run_torch(cfg, anchor, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(cfg.get("seed", 1))
    m, d, o = cfg["model"], cfg["data"], cfg["optimizer"]
    text = open(d["path"], encoding="utf-8").read()
    alphabet = sorted(set(text))  # code-point order, as alphabetOf
    index = {c: i for i, c in enumerate(alphabet)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    cut = round(len(ids) * (1 - d.get("testFraction", 0.1)))
    seq = m["seq"]
    xtr, ytr = windows(ids[:cut], seq)
    xte, yte = windows(ids[cut:], seq, d.get("testWindows", 256))
    model = anchor.GPT(m["layers"], m["dModel"], m["heads"], seq, len(alphabet))
    nanogpt_init(model, m["layers"])
    opt = torch.optim.Adam(model.parameters(), lr=o["lr"], betas=(o.get("beta1", 0.9), o.get("beta2", 0.999)), eps=o.get("epsilon", 1e-7))
    steps, batch = cfg["steps"], cfg["batchSize"]
    order = torch.randperm(len(xtr))
    cursor, train_s = 0, 0.0
    for step in range(steps):
        if cursor + batch > len(order):
            order, cursor = torch.randperm(len(xtr)), 0
        rows = order[cursor:cursor + batch]
        cursor += batch
        for g in opt.param_groups:
            g["lr"] = learning_rate(o, step, steps)
        t = time.perf_counter()
        opt.zero_grad()
        model(xtr[rows], ytr[rows]).backward()
        if o.get("clipNorm", 0) > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), o["clipNorm"])
        opt.step()
        train_s += time.perf_counter() - t
    with torch.no_grad():
        val = sum(model(xte[i:i + 64], yte[i:i + 64]).item() * len(xte[i:i + 64]) for i in range(0, len(xte), 64)) / len(xte)
    params = sum(p.numel() for p in model.parameters())
    return val / math.log(2), steps * batch * seq / train_s, params


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--anchor", default="/work/shared/anchors/gpt_char_torch.py")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--skip-dptrain", action="store_true")
    a = ap.parse_args()
    with open(a.config) as f:
        cfg = json.load(f)
    defaults = {"warmupSteps": 0, "schedule": "constant", "minLrRatio": 0.0, "clipNorm": 0}
    cfg["optimizer"] = {**defaults, **cfg.get("optimizer", {})}
    m = cfg["model"]
    shape = f"L={m['layers']} d={m['dModel']} H={m['heads']} T={m['seq']} steps={cfg['steps']} batch={cfg['batchSize']}"
    if not a.skip_dptrain:
        bits, tps, n, out = run_dptrain(a.config, a.workers)
        print(f"dptrain  {shape} workers={a.workers} params={n} val_bits_per_char={bits:.3f} tokens/s={tps:.0f} run={out}", flush=True)
    threads = a.threads or a.workers
    bits, tps, n = run_torch(cfg, load_anchor(a.anchor), threads)
    print(f"pytorch  {shape} threads={threads} params={n} val_bits_per_char={bits:.3f} tokens/s={tps:.0f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
