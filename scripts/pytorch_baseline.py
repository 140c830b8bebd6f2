#!/usr/bin/env python3
"""The PyTorch side of `ztrain bench` (its baselines), measured on this machine.

    python scripts/pytorch_baseline.py --out pytorch.json

Writes one JSON object whose keys `ztrain bench --pytorch-json` reads:

  eager_h32_b32_samples_per_s    blog model (seed cell: y_t and h_t both from [h_{t-1}, x_t]), H=32,
                                 Adam lr 1e-2, batch 32, eager loop over a shuffled epoch, 1 thread:
                                 996 / median epoch training time (evaluation excluded)
  eager_h256_b996_samples_per_s  the same with H=256 and the full batch of 996 (one step per epoch)
  ddp_gloo_2x1_b64_samples_per_s DistributedDataParallel (gloo), 2 processes x 1 thread, 32 windows
                                 per rank (global batch 64): 996 / median epoch time
  gloo_allreduce_1e7_ms          gloo all_reduce (SUM) of 1e7 float32, 2 ranks: median latency
                                 (the slower rank's, after a barrier)
  time_to_1e-4_s                 the H=32 batch 32 loop until the MSE over all 996 windows is below
                                 1e-4 (checked after every epoch, evaluation time included): wall
                                 seconds from the first step; median over seeds. The Python start-up
                                 and `import torch` are not included.

Data: x = linspace(0, 100, 1000), points [sin x, cos x]; window i = points i..i+3, target point i+4.

The round latency of gloo's all_reduce alone, for any size and rank count (what a sharded all-reduce
of P floats across N processes is measured against), prints one JSON object to stdout:

    python scripts/pytorch_baseline.py --allreduce --world 4 --params 1000000 --rounds 50

  {"mode": "gloo_allreduce", "world": N, "params": P, "rounds": K, "p50_ms": ..., "p90_ms": ...,
   "min_ms": ..., "transport": "tcp 127.0.0.1", "threads_per_rank": 1, "torch": ...}

N processes (one thread each) join a gloo group over TCP loopback; each round is a barrier, then
all_reduce (SUM) of P float32; a round's latency is its slowest rank's; p50/p90 over the K rounds
after --warmup rounds.
"""
import argparse
import json
import os
import socket
import statistics
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn


def windows(dtype=torch.float32):
    x = np.linspace(0.0, 100.0, 1000)
    series = np.stack([np.sin(x), np.cos(x)], axis=1)
    inputs = np.lib.stride_tricks.sliding_window_view(series, (4, 2))[:-1, 0]  # (996, 4, 2)
    targets = series[4:]  # (996, 2)
    return torch.tensor(np.ascontiguousarray(inputs), dtype=dtype), torch.tensor(targets, dtype=dtype)


class SeedRNN(nn.Module):
    """The reference cell: d = [h, x]; h' = tanh(W_h d + b_h); y = tanh(W_y d + b_y); the loss reads the last y."""

    def __init__(self, hidden):
        super().__init__()
        self.hidden = hidden
        self.get_ht = nn.Linear(hidden + 2, hidden)
        self.get_yt = nn.Linear(hidden + 2, 2)

    def forward(self, xs):
        h = xs.new_zeros(xs.shape[0], self.hidden)
        y = None
        for t in range(xs.shape[1]):
            d = torch.cat([h, xs[:, t]], dim=1)
            y = torch.tanh(self.get_yt(d))
            h = torch.tanh(self.get_ht(d))
        return y


def mse_all(model, xs, ys):
    with torch.no_grad():
        return float(torch.mean((model(xs) - ys) ** 2))


def eager(hidden, batch, epochs, seed, target=None):
    """Trains `epochs` epochs (or until `target` when given); returns per-epoch train seconds and
    (epoch, wall seconds) at which the MSE first went below the target."""
    torch.manual_seed(seed)
    xs, ys = windows()
    n = xs.shape[0]
    model = SeedRNN(hidden)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.MSELoss()
    train_s, reached = [], None
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        for s in range(0, n, batch):
            idx = perm[s:s + batch]
            opt.zero_grad()
            loss = loss_fn(model(xs[idx]), ys[idx])
            loss.backward()
            opt.step()
        train_s.append(time.perf_counter() - t0)
        if target is not None:
            if mse_all(model, xs, ys) < target:
                reached = (epoch, time.perf_counter() - start)
                break
    return train_s, reached


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_rank(rank, world, port, epochs, queue):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    from torch.nn.parallel import DistributedDataParallel

    xs, ys = windows()
    n = xs.shape[0]
    torch.manual_seed(0)
    model = DistributedDataParallel(SeedRNN(32))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.MSELoss()
    g = torch.Generator().manual_seed(1234)
    epoch_s = []
    for _ in range(epochs):
        shard = torch.randperm(n, generator=g)[rank::world]  # 498 windows per rank
        dist.barrier()
        t0 = time.perf_counter()
        for s in range(0, shard.numel(), 32):
            idx = shard[s:s + 32]
            opt.zero_grad()
            loss_fn(model(xs[idx]), ys[idx]).backward()
            opt.step()
        dist.barrier()
        epoch_s.append(time.perf_counter() - t0)

    # all_reduce of 1e7 floats
    lat = allreduce_latencies(10_000_000, warmup=3, rounds=20)
    if rank == 0:
        queue.put({"ddp_epoch_s": epoch_s, "allreduce_s": lat})
    dist.destroy_process_group()


def allreduce_latencies(params, warmup, rounds):
    """In a joined group: seconds of each of `rounds` all_reduce (SUM) rounds of `params` float32 after
    `warmup` rounds, each round after a barrier, the slowest rank's (every rank gets the list)."""
    t = torch.ones(params, dtype=torch.float32)
    for _ in range(warmup):
        dist.all_reduce(t)
    lat = []
    for _ in range(rounds):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(t)
        lat.append(time.perf_counter() - t0)
    lat_t = torch.tensor(lat, dtype=torch.float64)
    dist.all_reduce(lat_t, op=dist.ReduceOp.MAX)
    return lat_t.tolist()


def allreduce_rank(rank, world, port, params, warmup, rounds, queue):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    lat = allreduce_latencies(params, warmup, rounds)
    if rank == 0:
        queue.put(lat)
    dist.destroy_process_group()


def spawn_ranks(fn, world, args, say, what):
    """Runs `fn(rank, world, port, *args, queue)` on `world` processes and returns what rank 0 put in the
    queue, or None. gloo's rendezvous now and then aborts a rank on a loaded machine: a few attempts,
    each on a fresh port."""
    ctx = mp.get_context("spawn")
    for attempt in range(1, 4):
        queue = ctx.SimpleQueue()
        try:
            mp.spawn(fn, args=(world, free_port(), *args, queue), nprocs=world, join=True)
        except Exception as e:  # a rank died
            say(f"{what} attempt {attempt} failed: {e}")
            continue
        return queue.get()
    return None


def percentile(values, q):
    """The q-quantile (0..1) by linear interpolation between the closest ranks (numpy's default)."""
    return float(np.percentile(np.asarray(values), 100 * q))


def allreduce_mode(a, say):
    if a.world < 1 or a.params < 1 or a.rounds < 1 or a.warmup < 0:
        sys.exit("pytorch_baseline: --world, --params and --rounds must be at least 1, --warmup at least 0")
    lat = spawn_ranks(allreduce_rank, a.world, (a.params, a.warmup, a.rounds), say, "all_reduce")
    if lat is None:
        sys.exit("pytorch_baseline: the gloo group never formed (3 attempts); see the messages above")
    ms = [1000 * x for x in lat]
    out = {"mode": "gloo_allreduce", "world": a.world, "params": a.params, "rounds": a.rounds,
           "warmup": a.warmup, "p50_ms": percentile(ms, 0.5), "p90_ms": percentile(ms, 0.9), "min_ms": min(ms),
           "transport": "tcp 127.0.0.1", "threads_per_rank": 1, "torch": torch.__version__}
    print(json.dumps(out, sort_keys=True), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="the JSON to write (the baselines of `ztrain bench`)")
    p.add_argument("--seeds", type=int, default=3, help="runs to the target (seeds 0..N-1)")
    p.add_argument("--ddp-epochs", type=int, default=12)
    r = p.add_argument_group("gloo all_reduce round latency (prints JSON to stdout; no --out)")
    r.add_argument("--allreduce", action="store_true", help="measure only gloo's all_reduce round latency")
    r.add_argument("--world", type=int, default=2, help="processes (ranks), one thread each")
    r.add_argument("--params", type=int, default=1_000_000, help="float32 values reduced per round")
    r.add_argument("--rounds", type=int, default=50, help="rounds timed (p50 and p90 over them)")
    r.add_argument("--warmup", type=int, default=3, help="rounds run before the timed ones")
    a = p.parse_args()
    torch.set_num_threads(1)

    def say(msg):
        print(f"pytorch_baseline: {msg}", file=sys.stderr, flush=True)

    if a.allreduce:
        allreduce_mode(a, say)
        return
    if a.out is None:
        p.error("--out is required (or --allreduce)")
    out = {"torch": torch.__version__, "python": sys.version.split()[0], "threads": 1}

    # 1. eager H=32 batch 32: the first epoch is a warm-up
    train_s, _ = eager(32, 32, epochs=11, seed=0)
    out["eager_h32_b32_samples_per_s"] = 996 / statistics.median(train_s[1:])
    say(f"eager H=32 batch 32: {out['eager_h32_b32_samples_per_s']:,.0f} samples/s")

    # 2. eager H=256 batch 996 (one step per epoch)
    train_s, _ = eager(256, 996, epochs=21, seed=0)
    out["eager_h256_b996_samples_per_s"] = 996 / statistics.median(train_s[1:])
    say(f"eager H=256 batch 996: {out['eager_h256_b996_samples_per_s']:,.0f} samples/s")

    # 8. time to MSE < 1e-4
    walls, epochs = [], []
    for seed in range(a.seeds):
        _, reached = eager(32, 32, epochs=500, seed=seed, target=1e-4)
        if reached is None:
            say(f"seed {seed}: MSE < 1e-4 not reached in 500 epochs")
            continue
        epochs.append(reached[0])
        walls.append(reached[1])
    if walls:
        out["time_to_1e-4_s"] = statistics.median(walls)
        out["epochs_to_1e-4"] = epochs
        say(f"time to MSE < 1e-4: {out['time_to_1e-4_s']:.3f} s (epochs {epochs})")

    # 3 and 5. DDP gloo and all_reduce, 2 processes (without a result the keys are left out and
    # `ztrain bench` uses the recorded figures for them)
    r = spawn_ranks(ddp_rank, 2, (a.ddp_epochs,), say, "DDP")
    if r is not None:
        out["ddp_gloo_2x1_b64_samples_per_s"] = 996 / statistics.median(r["ddp_epoch_s"][1:])
        out["ddp_step_ms"] = 1000 * statistics.median(r["ddp_epoch_s"][1:]) / 16
        out["gloo_allreduce_1e7_ms"] = 1000 * statistics.median(r["allreduce_s"])
        say(f"DDP gloo 2x1 batch 64: {out['ddp_gloo_2x1_b64_samples_per_s']:,.0f} samples/s; "
            f"all_reduce 1e7: {out['gloo_allreduce_1e7_ms']:.1f} ms")
    else:
        say("DDP and all_reduce not measured: ztrain bench will use the recorded figures for them")

    with open(a.out, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
