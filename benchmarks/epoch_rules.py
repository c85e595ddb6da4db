"""Which label-free rule picks the fine-tuning epoch best: each rule on every probed curve.

``benchmarks.learning_curve --probes DIR`` writes, for every epoch of every curve, the
features of the gallery, the test set, the safeguard's held-out normals and one altered
copy of each held-out image per kind: local (cut-paste, scar, blend: what the safeguard
used) and global (rotate, flip, shuffle, mosaic: what a semantic anomaly changes). This
script replays candidate rules on those features (labels are used only to score the
choice) and prints, per rule: how often the kept epoch is within 0.5 ROC-AUC points of
the best epoch, the worst loss against epoch 0, the share of the best epoch's gain kept,
and whether any kept epoch is below epoch 0 beyond the paired bootstrap noise of the test
set (its 95 % interval below zero).

Example::

    python -m benchmarks.epoch_rules /work/data/probes/cifar10 /work/data/probes/elpv \\
        --out benchmarks/results/epoch-rules.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from skmsc.neighbors import ExactIndex
from skmsc.nn import _safeguard

LOCAL = ("cut-paste", "scar", "blend")
GLOBAL = _safeguard.GLOBAL_KINDS
TEST_BOOTSTRAP_ROUNDS = 500


def knn(gallery, queries, k=2):
    distances, _ = ExactIndex(np.ascontiguousarray(gallery)).kneighbors(queries, k)
    return -distances.sum(axis=1)


def load_curve(folder: Path) -> dict:
    """Per epoch: held-out normal scores, probe scores per kind, test scores."""
    epochs = sorted(folder.glob("epoch*.npz"), key=lambda p: int(p.stem[5:]))
    out = {"name": folder.name, "normal": [], "probes": [], "test": []}
    for path in epochs:
        d = np.load(path)
        features = d["features"].astype(np.float32)
        gallery = features[d["train_rows"]]
        held = features[d["held_out"]]
        out["normal"].append(knn(gallery, held))
        out["probes"].append({k: knn(gallery, d[k].astype(np.float32)) for k in (*LOCAL, *GLOBAL)})
        out["test"].append(knn(features, d["test"].astype(np.float32)))
        out["y"] = d["y_test"].astype(int)
    return out


def proxy(curve, epoch, kinds):
    """(normal scores, anomaly scores) of one epoch against the union of ``kinds``."""
    return curve["normal"][epoch], np.concatenate([curve["probes"][epoch][k] for k in kinds])


def significant_best(curve, kinds):
    """The safeguard's rule on a proxy of ``kinds``: the best fine-tuned epoch if it beats
    epoch 0 by ``MIN_GAIN`` and its bootstrap bound lies above zero, else 0."""
    return _safeguard.best_epoch([proxy(curve, e, kinds) for e in range(len(curve["normal"]))])


def rule_veto(curve):
    """Global proxy picks; a local proxy that falls significantly at that epoch vetoes it."""
    e = significant_best(curve, GLOBAL)
    if e == 0:
        return 0
    low = -_safeguard.gain_lower_bound(proxy(curve, 0, LOCAL), proxy(curve, e, LOCAL))
    return 0 if low < 0 else e  # upper bound of the local gain below zero: a real drop


def per_kind_mean(curve):
    """The epoch with the highest mean over kinds of each kind's proxy AUC, if above 0."""
    kinds = (*LOCAL, *GLOBAL)
    means = [np.mean([_safeguard.auc(curve["normal"][e], curve["probes"][e][k]) for k in kinds])
             for e in range(len(curve["normal"]))]
    best = 1 + int(np.argmax(means[1:]))
    return best if means[best] >= means[0] + _safeguard.MIN_GAIN else 0


RULES = {
    "epoch 0 (no fine-tuning)": lambda c: 0,
    "last epoch (no safeguard)": lambda c: len(c["normal"]) - 1,
    "local proxy (the old safeguard)": lambda c: significant_best(c, LOCAL),
    "global proxy": lambda c: significant_best(c, GLOBAL),
    "local + global proxy": lambda c: significant_best(c, (*LOCAL, *GLOBAL)),
    "global proxy, local veto": rule_veto,
    "mean of per-kind proxies": per_kind_mean,
}


def test_interval(y, a, b, rng):
    """95 % paired bootstrap interval of AUC(a) - AUC(b) in points (test images resampled)."""
    normal, other = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    gains = np.empty(TEST_BOOTSTRAP_ROUNDS)
    for i in range(TEST_BOOTSTRAP_ROUNDS):
        idx = np.concatenate([rng.choice(normal, len(normal)), rng.choice(other, len(other))])
        gains[i] = roc_auc_score(y[idx], a[idx]) - roc_auc_score(y[idx], b[idx])
    return tuple(float(v) for v in 100 * np.percentile(gains, [2.5, 97.5]))


def evaluate(curves, rules):
    rng = np.random.default_rng(0)
    table = {}
    for rule_name, rule in rules.items():
        rows = []
        for c in curves:
            aucs = [100 * roc_auc_score(c["y"], s) for s in c["test"]]
            best, chosen = int(np.argmax(aucs)), rule(c)
            gain_best = aucs[best] - aucs[0]
            low, high = test_interval(c["y"], c["test"][chosen], c["test"][0], rng) \
                if chosen else (0.0, 0.0)
            rows.append({"curve": c["name"], "chosen": chosen, "best": best,
                         "auc_chosen": aucs[chosen], "auc_0": aucs[0], "auc_best": aucs[best],
                         "within_0.5": aucs[best] - aucs[chosen] <= 0.5,
                         "gain": aucs[chosen] - aucs[0], "best_gain": gain_best,
                         "interval_vs_0": [low, high]})
        gains = sum(r["gain"] for r in rows)
        best_gains = sum(r["best_gain"] for r in rows)
        table[rule_name] = {
            "within_0.5": sum(r["within_0.5"] for r in rows), "n": len(rows),
            "worst_vs_0": min(r["gain"] for r in rows),
            "share_of_best_gain": gains / best_gains if best_gains > 0 else float("nan"),
            "below_0_beyond_noise": sum(r["interval_vs_0"][1] < 0 for r in rows),
            "curves": rows,
        }
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path,
                        help="--probes folders of learning_curve.py (one sub-folder per curve)")
    parser.add_argument("--out", type=Path, help="write the table as JSON here")
    args = parser.parse_args(argv)
    groups = {}
    for folder in args.folders:
        subfolders = sorted(p for p in folder.iterdir() if p.is_dir())
        groups[folder.name] = [load_curve(p) for p in subfolders]
    result = {"command": " ".join(["python", "-m", "benchmarks.epoch_rules",
                                   *(argv or sys.argv[1:])]), "groups": {}}
    for group, curves in groups.items():
        table = evaluate(curves, RULES)
        result["groups"][group] = table
        print(f"\n{group}: {len(curves)} curves; test ROC-AUC by epoch:")
        for c in table["epoch 0 (no fine-tuning)"]["curves"]:
            print(f"  {c['curve']}: epoch 0 {c['auc_0']:.2f}, best {c['auc_best']:.2f} "
                  f"(epoch {c['best']})")
        print(f"  {'rule':34} within 0.5  worst vs 0  share of gain  below 0 (noise)  epochs")
        for name, row in table.items():
            print(f"  {name:34} {row['within_0.5']:>4}/{row['n']:<5} {row['worst_vs_0']:+9.2f}"
                  f" {100 * row['share_of_best_gain']:12.0f} % {row['below_0_beyond_noise']:>8}"
                  f"         {[r['chosen'] for r in row['curves']]}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
