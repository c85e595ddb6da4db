"""The ``skmsc`` command line: fit a detector on a folder of images, score image files.

Exit codes: 0 success; 2 usage error (bad arguments, missing folder or model, no images
found, invalid parameter value); 1 any other failure (unreadable image, model that cannot
be loaded, ...), with a one-line reason on stderr. Progress bars and messages go to
stderr; results go to stdout or to the ``--csv`` file.
"""

from __future__ import annotations

import os

# An application may choose the OpenMP policy (a library may not): spinning OpenMP
# threads make convolutions many times slower on small machines. Must precede torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import csv  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from ._version import __version__  # noqa: E402

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

# Estimator parameters exposed by `skmsc fit`: (flag, type, help). Unset flags keep the
# estimator's defaults.
FIT_PARAMETERS = [
    ("backbone", str, "pretrained network (estimator default: resnet152; "
     "efficientnet_lite0 works offline)"),
    ("weights", str, "'imagenet', a state-dict file, or 'none' for random weights"),
    ("frozen_stages", str, "'auto' or the number of leading stages kept frozen"),
    ("epochs", int, "fine-tuning epochs (0: pretrained features only)"),
    ("batch_size", int, "images per step and per scoring batch"),
    ("learning_rate", float, "SGD learning rate"),
    ("weight_decay", float, "SGD weight decay"),
    ("temperature", float, "contrastive loss temperature"),
    ("n_neighbors", int, "neighbours summed in the anomaly score"),
    ("image_size", int, "side of the square the network sees"),
    ("knn_algorithm", str, "'auto', 'exact' or 'nndescent'"),
    ("contamination", str, "'auto' or the expected anomaly fraction in (0, 0.5]"),
    ("device", str, "'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ("random_state", int, "seed, for reproducible fits"),
]


class UsageError(Exception):
    """A mistake in how the command was called (exit code 2).

    Examples
    --------
    A missing image or model is a usage error: one line on stderr, exit code 2.

    >>> from skmsc.cli import EXIT_USAGE, main
    >>> main(["score", "no-such-model", "no-such-image.png"]) == EXIT_USAGE
    True
    """


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skmsc",
        description="Image anomaly detection with the mean-shifted contrastive loss: fit on "
        "a folder of normal images, then score new images.",
        epilog="Exit codes: 0 ok, 1 failure (one-line reason on stderr), 2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"skmsc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    files = argparse.ArgumentParser(add_help=False)
    files.add_argument(
        "--ext", default=None,
        help="comma-separated file extensions to take from folders (default: every format "
        "skmsc.datasets.IMAGE_EXTENSIONS lists, e.g. png,jpg,tif)",
    )
    files.add_argument(
        "--no-recursive", dest="recursive", action="store_false",
        help="do not look into sub-folders",
    )
    files.add_argument(
        "--workers", type=int, default=None,
        help="image decoding threads (default: min(4, CPUs); 0 decodes in the main thread)",
    )
    files.add_argument(
        "--skip-unreadable", action="store_true",
        help="check every image first and leave unreadable ones out, listing them on stderr "
        "(default: stop with an error naming the first unreadable image)",
    )
    files.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    fit = sub.add_parser(
        "fit", parents=[files], help="fit a detector on a folder of normal images",
        description="Fit a detector on the normal images found in NORMAL_DIR (recursively) "
        "and save it to the folder MODEL (safetensors + JSON: loading it runs no code).",
    )
    fit.add_argument("normal_dir", metavar="NORMAL_DIR", nargs="+",
                     help="folder(s) of normal images")
    fit.add_argument("-o", "--output", required=True, metavar="MODEL",
                     help="folder to save the fitted model to")
    for name, kind, text in FIT_PARAMETERS:
        fit.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=text)
    fit.add_argument("--angular", action="store_true", default=None,
                     help="add the angular centre loss")

    score = sub.add_parser(
        "score", parents=[files], help="score images with a fitted detector",
        description="Score image files (or the images in folders) with a model written by "
        "'skmsc fit'. Writes CSV rows path,score,decision,label: score is higher for more "
        "normal images, decision = score - threshold, label is 'anomaly' when decision < 0 "
        "else 'normal'.",
    )
    score.add_argument("model", metavar="MODEL", help="model folder written by 'skmsc fit'")
    score.add_argument("images", metavar="IMAGES", nargs="+", help="image files or folders")
    score.add_argument("--csv", metavar="FILE", help="write the CSV here instead of stdout")
    score.add_argument(
        "--sort", choices=["none", "score", "path"], default="none",
        help="row order: input order (default), by score ascending (most anomalous "
        "first), or by path",
    )
    score.add_argument("--batch-size", type=int, help="images per scoring batch")
    score.add_argument("--device", help="'cpu', 'cuda', 'cuda:N' (default: as saved, if here)")
    _add_map_options(score)

    info = sub.add_parser(
        "info", help="describe a fitted model",
        description="Print a fitted model's settings, training size and threshold.",
    )
    info.add_argument("model", metavar="MODEL", help="model folder written by 'skmsc fit'")
    return parser


def _collect(arguments: list[str], args, *, folders_only: bool) -> list[str]:
    """Image paths from folders (filtered by extension) and, for scoring, single files."""
    extensions = None if args.ext is None else [e for e in args.ext.split(",") if e.strip()]
    from .data.files import list_image_files

    paths = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            paths += list_image_files(path, recursive=args.recursive, extensions=extensions)
        elif folders_only:
            raise UsageError(f"not a folder: {argument}")
        elif path.exists():
            paths.append(argument)
        else:
            raise UsageError(f"no such file or folder: {argument}")
    if not paths:
        raise UsageError(f"no image files found in {' '.join(arguments)}")
    return paths


def _readable(paths: list[str], args) -> list[str]:
    if not args.skip_unreadable:
        return paths
    from .data.files import find_unreadable

    failures = find_unreadable(paths, n_workers=args.workers)
    for _, reason in failures:
        print(f"skmsc: skipped: {_one_line(reason)}", file=sys.stderr)
    bad = {name for name, _ in failures}
    kept = [p for p in paths if p not in bad]
    if failures:
        print(f"skmsc: skipped {len(failures)} unreadable of {len(paths)} images",
              file=sys.stderr)
    if not kept:
        raise RuntimeError("no readable images left")
    return kept


def _load_model(path: str):
    from .persistence import load

    if not Path(path).exists():
        raise UsageError(f"no such model: {path}")
    try:
        return load(path)
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"cannot load model {path}: {exc}") from exc


def _fit(args) -> int:
    # Files are listed and checked before torch is imported: mistakes show at once.
    paths = _readable(_collect(args.normal_dir, args, folders_only=True), args)

    from ._estimators import MeanShiftedContrastiveDetector
    from .data.files import ImageFiles

    names = [name for name, _, _ in FIT_PARAMETERS] + ["angular"]
    params = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if params.get("weights") == "none":
        params["weights"] = None
    if params.get("frozen_stages", "auto") != "auto":
        params["frozen_stages"] = _number(params["frozen_stages"], int, "--frozen-stages")
    if params.get("contamination", "auto") != "auto":
        params["contamination"] = _number(params["contamination"], float, "--contamination")
    detector = MeanShiftedContrastiveDetector(**params, verbose=not args.quiet)
    detector._validate_params()  # bad values are usage errors, reported before fitting
    print(f"skmsc: fitting on {len(paths)} images", file=sys.stderr)
    detector.fit(ImageFiles(paths, n_workers=args.workers))
    detector.set_params(verbose=False)
    detector.save(args.output)
    print(f"skmsc: model written to {args.output}", file=sys.stderr)
    return EXIT_OK


def _score(args) -> int:
    from .data.files import ImageFiles

    _check_map_options(args)
    paths = _readable(_collect(args.images, args, folders_only=False), args)
    detector = _load_model(args.model)
    detector.set_params(verbose=not args.quiet)
    if args.batch_size is not None:
        detector.set_params(batch_size=args.batch_size)
        detector._validate_params()
    if args.device is not None:
        _move(detector, args.device)
    scores = detector.score_samples(ImageFiles(paths, n_workers=args.workers))
    decisions = scores - detector.offset_
    rows = list(zip(paths, scores, decisions, strict=True))
    if args.sort == "score":
        rows.sort(key=lambda row: row[1])
    elif args.sort == "path":
        rows.sort(key=lambda row: row[0])
    out = open(args.csv, "w", newline="") if args.csv else sys.stdout
    try:
        writer = csv.writer(out)
        writer.writerow(["path", "score", "decision", "label"])
        for path, score, decision in rows:
            # repr keeps every digit, so the file reproduces score_samples exactly.
            label = "anomaly" if decision < 0 else "normal"
            writer.writerow([path, repr(float(score)), repr(float(decision)), label])
    finally:
        if out is not sys.stdout:
            out.close()
    n_anomalies = int((decisions < 0).sum())
    print(f"skmsc: scored {len(rows)} images, {n_anomalies} flagged as anomalies",
          file=sys.stderr)
    _write_maps(detector, paths, decisions, args)
    return EXIT_OK


# ------------------------------------------------------------ skmsc score --maps DIR
def _add_map_options(score) -> None:
    score.add_argument(
        "--maps", metavar="DIR",
        help="write a PNG per flagged image into DIR (new or empty): the image, its anomaly "
        "map with score and decision, and (with --normal) its nearest normal image",
    )
    score.add_argument(
        "--map-method", choices=["gradient", "occlusion"], default=None,
        help="how the maps are computed (default: the detector's, gradient); occlusion is "
        "about 50 times slower",
    )
    score.add_argument(
        "--normal", metavar="NORMAL_DIR", nargs="+",
        help="with --maps: the folder(s) the model was fitted on, listed as 'skmsc fit' "
        "lists them (same --ext, --no-recursive, --skip-unreadable), to show each flagged "
        "image's nearest normal image",
    )


def _check_map_options(args) -> None:
    """--maps needs matplotlib and a new or empty folder outside the model; checked
    before any image is scored."""
    if args.maps is None:
        if args.normal is not None or args.map_method is not None:
            raise UsageError("--normal and --map-method go with --maps DIR")
        return
    maps = Path(args.maps)
    if maps.exists() and (not maps.is_dir() or any(maps.iterdir())):
        raise UsageError(f"--maps: {args.maps} exists and is not an empty folder; "
                         "choose a new or empty folder")
    if maps.resolve().is_relative_to(Path(args.model).resolve()):
        raise UsageError(f"--maps: {args.maps} lies inside the model folder {args.model}; "
                         "choose a folder outside it")
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise RuntimeError("--maps needs matplotlib: pip install 'skmsc[plot]'")


def _map_file_names(paths: list[str]) -> list[str]:
    """``<stem>.png`` per image; a repeated stem gets ``-2``, ``-3``, ... appended."""
    names, seen = [], {}
    for path in paths:
        stem = Path(path).stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(f"{stem}.png" if seen[stem] == 1 else f"{stem}-{seen[stem]}.png")
    return names


def _write_maps(detector, paths: list[str], decisions, args) -> None:
    """One overlay PNG per flagged image (decision < 0), one image at a time."""
    if args.maps is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .data.files import ImageFiles
    from .plotting import plot_anomaly_maps

    normal = None
    if args.normal is not None:
        normal = ImageFiles(_readable(_collect(args.normal, args, folders_only=True), args),
                            n_workers=0)
        if len(normal) != len(detector.train_features_):
            raise UsageError(
                f"--normal lists {len(normal)} images but the model was fitted on "
                f"{len(detector.train_features_)}: give the folders (and --ext) it was "
                "fitted with"
            )
    flagged = [(path, decision) for path, decision in zip(paths, decisions, strict=True)
               if decision < 0]
    out = Path(args.maps)
    out.mkdir(parents=True, exist_ok=True)
    detector.set_params(verbose=False)
    for (path, decision), name in zip(flagged, _map_file_names([p for p, _ in flagged]),
                                      strict=True):
        fig = plot_anomaly_maps(detector, ImageFiles([path], n_workers=0), normal,
                                method=args.map_method, decisions=[decision])
        fig.savefig(out / name, dpi=110, bbox_inches="tight")
        plt.close(fig)
    print(f"skmsc: wrote {len(flagged)} anomaly maps to {out}", file=sys.stderr)


def _info(args) -> int:
    detector = _load_model(args.model)
    spec = detector.backbone_spec_
    lines = {
        "backbone": spec.name if spec is not None else "none (feature vectors)",
        "image_size": detector.image_size_,
        "epochs": detector.epochs,
        "n_training_images": len(detector.train_features_),
        "n_neighbors": detector.n_neighbors,
        "contamination": detector.contamination,
        "offset": detector.offset_,
        "knn_algorithm": detector.knn_algorithm_,
        "device": detector.device_,
        "versions": ", ".join(f"{k} {v}" for k, v in detector.versions_.items()),
    }
    for key, value in lines.items():
        print(f"{key}: {value}")
    return EXIT_OK


def _move(detector, device: str) -> None:
    import torch

    from .nn._runtime import resolve_device

    try:
        target = resolve_device(device)
    except (ValueError, RuntimeError) as exc:
        raise UsageError(str(exc)) from exc
    if detector.encoder_ is not None:
        detector.encoder_.to(target)
    detector.device_ = torch.device(target)


def _number(text: str, kind, flag: str):
    try:
        return kind(text)
    except ValueError:
        raise UsageError(f"{flag}: expected 'auto' or a number, got {text!r}") from None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv=None) -> int:
    """Run the command line; returns the exit code.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments after ``skmsc``; ``None`` reads ``sys.argv``.

    Returns
    -------
    exit_code : int
        0 on success, 1 on a failure (one-line reason on stderr), 2 on a usage error.

    Examples
    --------
    >>> from skmsc.cli import main
    >>> main(["info", "no-such-model-folder"])  # doctest: +SKIP
    1
    """
    args = _parser().parse_args(argv)  # exits with 2 on usage errors, 0 on --help
    commands = {"fit": _fit, "score": _score, "info": _info}
    try:
        return commands[args.command](args)
    except UsageError as exc:
        print(f"skmsc {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("skmsc: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from sklearn.utils._param_validation import InvalidParameterError

        if isinstance(exc, InvalidParameterError):
            print(f"skmsc {args.command}: error: {_one_line(exc)}", file=sys.stderr)
            return EXIT_USAGE
        hint = ""
        from .data.files import UnreadableImageError

        if isinstance(exc, UnreadableImageError | FileNotFoundError):
            hint = " (--skip-unreadable leaves such files out)"
        print(f"skmsc {args.command}: error: {_one_line(exc)}{hint}", file=sys.stderr)
        return EXIT_FAILURE
