#!/usr/bin/env python3
"""The real-series table of README and BENCHMARKS.md: ztrain against persistence, seasonal naive and a
PyTorch `nn.RNN` + `nn.Linear` trained the same way.

    python3 -m venv /tmp/v && /tmp/v/bin/pip install numpy torch   # the CPU wheel is enough
    /tmp/v/bin/python scripts/real_series.py .build/release/ztrain examples/series/*.csv

For each CSV (columns `time`, `value`) it runs the plain recipe

    ztrain train --data X.csv --columns value --time-column time --val-fraction 0.2 --seq-len 12 --epochs 300
    ztrain predict --model OUT/model.safetensors --format csv --out OUT/predictions.csv

and reads the one-step predictions of the held-out 20 % from the CSV (original units). The PyTorch model is
`nn.RNN(1, 32, batch_first=True)` (tanh) with `nn.Linear(32, 1)` on the last hidden state, trained on the
same transformed series (the differencing order and scaling ztrain fitted, read from its summary.json), with
the same windows, Adam lr 1e-2, batch 32 shuffled, 300 epochs, the MSE of the last step; its predictions are
inverted the same way. Its result moves with the seed (and with perturbations of the input in the 7th digit),
so the table gives the median of seeds 0, 1 and 2 and their range. The baselines predict point i by point i-1 (persistence) and i-S (seasonal naive,
S from ztrain's summary: 12 for months, 4 for quarters, none for years). RMSE over the validation targets: every
point of the held-out part (the last round(0.2 M) points of the series the model sees), as ztrain's split has them.
"""
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch


def rmse(pred, truth):
    return float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(truth)) ** 2)))


def coefficients(d, S):
    c = np.array([1.0])
    if S > 0:
        c = np.convolve(c, np.r_[1.0, np.zeros(S - 1), -1.0])
    for _ in range(d):
        c = np.convolve(c, [1.0, -1.0])
    return c


def torch_rnn(z, T, train_windows, seed=0, hidden=32, epochs=300, batch=32, lr=1e-2):
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    rnn = torch.nn.RNN(1, hidden, batch_first=True)
    head = torch.nn.Linear(hidden, 1)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    x = torch.tensor(z, dtype=torch.float32)
    X = torch.stack([x[w:w + T] for w in range(len(z) - T)]).unsqueeze(-1)
    Y = torch.stack([x[w + T] for w in range(len(z) - T)]).unsqueeze(-1)
    tw = torch.tensor(train_windows)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = tw[torch.randperm(len(tw), generator=g)]
        for k in range(0, len(order), batch):
            b = order[k:k + batch]
            out, _ = rnn(X[b])
            loss = torch.mean((head(out[:, -1]) - Y[b]) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        out, _ = rnn(X)
        return head(out[:, -1]).squeeze(-1).numpy().astype(np.float64)


def main():
    ztrain, files = sys.argv[1], sys.argv[2:]
    rows = []
    for f in files:
        name = Path(f).stem
        out = Path(tempfile.mkdtemp(prefix=f"zt-{name}-"))
        subprocess.run([ztrain, "train", "--data", f, "--columns", "value", "--time-column", "time",
                        "--val-fraction", "0.2", "--seq-len", "12", "--epochs", "300", "--out", str(out), "--quiet"],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run([ztrain, "predict", "--model", str(out / "model.safetensors"), "--format", "csv",
                        "--out", str(out / "predictions.csv"), "--quiet"], check=True, stdout=subprocess.DEVNULL)
        summary = json.load(open(out / "summary.json"))
        tr = summary["config"]["transform"]
        d, S, season = tr["difference"], tr["seasonal_period"], summary["evaluation"].get("season")
        with open(out / "predictions.csv") as fh:
            pred = list(csv.DictReader(fh))
        y = np.array([float(r["actual"]) for r in pred if r["actual"] != ""])
        one = {int(r["point"]): float(r["one_step"]) for r in pred if r["one_step"] != ""}
        T, L, N = 12, d + S, len(y)
        M = N - L
        n_train = M - round(0.2 * M)
        # every held-out point is a target (its window may take inputs from before the cut), as in ztrain's split
        targets = [j + T + L for j in range(max(0, n_train - T), M - T)]
        truth = y[targets]
        # the transformed series, as ztrain built it
        c = coefficients(d, S)
        z = np.array([sum(c[k] * y[i - k] for k in range(len(c))) for i in range(L, N)])
        z = (z - tr["offset"][0]) / tr["divisor"][0]
        torch_rmse = []
        for seed in (0, 1, 2):
            zhat = torch_rnn(z, T, list(range(0, max(0, n_train - T))), seed=seed)
            torch_pred = [zhat[i - L - T] * tr["divisor"][0] + tr["offset"][0] - sum(c[k] * y[i - k] for k in range(1, len(c)))
                          for i in targets]
            torch_rmse.append(rmse(torch_pred, truth))
        row = {
            "series": name, "points": N, "d": d, "season": season,
            "ztrain": rmse([one[i] for i in targets], truth),
            "persistence": rmse(y[[i - 1 for i in targets]], truth),
            "seasonal_naive": rmse(y[[i - season for i in targets]], truth) if season else None,
            "pytorch": sorted(torch_rmse)[1], "pytorch_range": [min(torch_rmse), max(torch_rmse)],
        }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    print("| series | points | d (KPSS) | season | ztrain | persistence | seasonal naive | PyTorch nn.RNN + Linear (median of 3 seeds, range) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        sn = f"{r['seasonal_naive']:.4g}" if r["seasonal_naive"] is not None else "–"
        lo, hi = r["pytorch_range"]
        print(f"| {r['series']} | {r['points']} | {r['d']} | {r['season'] or '–'} | {r['ztrain']:.4g} | "
              f"{r['persistence']:.4g} | {sn} | {r['pytorch']:.4g} ({lo:.4g}–{hi:.4g}) |")


if __name__ == "__main__":
    main()
