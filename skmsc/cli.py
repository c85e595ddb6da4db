"""The ``skmsc`` command line: fit a detector on a folder of images, score image files,
print a model's card, evaluate on an MVTec-AD or VisA category.

Exit codes: 0 success; 2 usage error (bad arguments, missing folder or model, no images
found, invalid parameter value, an output that would overwrite something); 1 any other
failure (unreadable image, model that cannot be loaded, ...), with a one-line reason on
stderr. Progress bars and messages go to stderr; results go to stdout or to the ``--csv``
file.

Outputs never destroy inputs: the targets are checked before any work; an existing file
or model is replaced only with ``--overwrite``, and then atomically (a temporary file or
folder renamed in place, so a failure leaves the old one whole); the model folder and the
input images are never written; writing into an input folder needs ``--overwrite``. CSV
cells that a spreadsheet would run as a formula (paths starting with ``= + - @``, tab or
carriage return, or a quote) get a leading ``'``, as OWASP recommends: remove one
leading ``'`` to get the path back.
"""

from __future__ import annotations

import os

# An application may choose the OpenMP policy (a library may not): spinning OpenMP
# threads make convolutions many times slower on small machines. Must precede torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import csv  # noqa: E402
import inspect  # noqa: E402
import io  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from collections import Counter  # noqa: E402
from numbers import Integral  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from ._fileio import write_file_atomically  # noqa: E402
from ._version import __version__  # noqa: E402

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


# Help of the estimator parameters that `skmsc fit` offers. Which flags there are, what
# values they take and their defaults come from MeanShiftedContrastiveDetector itself (its
# signature and parameter_constraints(), read by fit_parameters): a new estimator parameter
# gets a flag without a change here (and a generic help line until it gets its own).
FIT_HELP = {
    "backbone": "pretrained network (efficientnet_lite0 works offline and is the fast one "
    "on a CPU)",
    "weights": "'imagenet', a state-dict file, or 'none' for random weights",
    "frozen_stages": "'auto' or the number of leading stages kept frozen",
    "epochs": "fine-tuning epochs (0: pretrained features only)",
    "batch_size": "images per step and per scoring batch",
    "learning_rate": "SGD learning rate",
    "weight_decay": "SGD weight decay",
    "temperature": "contrastive loss temperature",
    "angular": "add the angular centre loss",
    "n_neighbors": "neighbours summed in the anomaly score",
    "image_size": "side of the square the network sees",
    "knn_algorithm": "'auto', 'exact' or 'nndescent'",
    "contamination": "fraction of new normal images to flag (false-alarm rate), 'auto' "
    "(0.01) or a number in (0, 0.5]",
    "device": "'auto', 'cpu', 'cuda' or 'cuda:N'",
    "precision": "'auto', 'float32', 'bfloat16' or 'float16' (network arithmetic)",
    "early_stopping": "the label-free safeguard: keep the fine-tuning epoch (or the "
    "pretrained network) that best separates held-out images from synthetic anomalies",
    "validation_fraction": "fraction of the images held out for --early-stopping",
    "n_iter_no_change": "with --early-stopping, stop after this many epochs without a new "
    "best",
    "random_state": "seed, for reproducible fits",
    "gallery_size": "shrink the searched gallery to a number of vectors (e.g. 600) or a "
    "fraction of the training images (e.g. 0.1); none: keep them all",
    "gallery_reduction": "'kmeans' or 'coreset': how --gallery-size shrinks it",
}
#: Estimator parameters without a `fit` flag: -q/--quiet sets verbose.
FIT_EXCLUDED = ("verbose",)


def fit_parameters() -> list[tuple[str, object, list]]:
    """(name, default, constraints) of each estimator parameter `skmsc fit` offers, in the
    signature's order. Imports the estimator (and torch): called only for `skmsc fit`.

    Examples
    --------
    >>> from skmsc.cli import fit_parameters
    >>> {name: default for name, default, _ in fit_parameters()}["n_iter_no_change"]
    3
    """
    from ._estimators import MeanShiftedContrastiveDetector

    constraints = MeanShiftedContrastiveDetector.parameter_constraints()
    signature = inspect.signature(MeanShiftedContrastiveDetector.__init__)
    return [(name, parameter.default, constraints[name])
            for name, parameter in list(signature.parameters.items())[1:]
            if name not in FIT_EXCLUDED]


def _flag_value(name: str, constraints: list):
    """The argparse ``type`` of a parameter: the text read by the first constraint it fits
    ('none' for None, an option, an integer, a number, a seed). Other text is a usage error
    here for a number-only parameter; else it goes to the estimator, whose own check
    reports it."""
    from sklearn.utils._param_validation import Interval, StrOptions

    def convert(text: str):
        if text.lower() == "none" and None in constraints:
            return None
        if any(isinstance(c, StrOptions) and text in c.options for c in constraints):
            return text
        kinds = [c.type for c in constraints if isinstance(c, Interval)]
        kinds += [Integral] if "random_state" in constraints else []
        for kind in sorted(kinds, key=lambda k: k is not Integral):  # integers first
            try:
                return int(text) if kind is Integral else float(text)
            except ValueError:
                pass
        if any(isinstance(c, StrOptions) or c is str for c in constraints):
            return text
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kinds == [Integral] else 'a number'}"
            f"{' or none' if None in constraints else ''}, got {text!r}")

    convert.__name__ = name
    return convert


def _add_fit_parameters(fit) -> None:
    for name, default, constraints in fit_parameters():
        flag = "--" + name.replace("_", "-")
        text = FIT_HELP.get(name, f"the {name} parameter of MeanShiftedContrastiveDetector")
        shown = f"{text} (default: {'none' if default is None else default})"
        if "boolean" in constraints:
            fit.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction,
                             default=argparse.SUPPRESS, help=shown)
        else:
            fit.add_argument(flag, dest=name, type=_flag_value(name, constraints),
                             default=argparse.SUPPRESS, help=shown)


class UsageError(Exception):
    """A mistake in how the command was called (exit code 2).

    Examples
    --------
    A missing image or model is a usage error: one line on stderr, exit code 2.

    >>> from skmsc.cli import EXIT_USAGE, main
    >>> main(["score", "no-such-model", "no-such-image.png"]) == EXIT_USAGE
    True
    """


def _parser(argv=None) -> argparse.ArgumentParser:
    """The command line's parser; `fit`'s estimator flags only when ``argv`` is a `fit`
    command (they import the estimator, which `skmsc --help` and the other commands do not
    wait for)."""
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
        "--workers", type=_non_negative_int, default=None,
        help="image decoding threads (default: min(4, CPUs); 0 decodes in the main thread)",
    )
    files.add_argument(
        "--bit-depth", type=_bit_depth, default=None, metavar="BITS",
        help="bits used by images of more than 8 bits per sample, e.g. 12 for a 12-bit "
        "camera writing 0-4095 into 16-bit files (default: the file type's full range)",
    )
    files.add_argument(
        "--overwrite", action="store_true",
        help="replace an existing output (model folder or CSV file), or write into an "
        "input folder; never the model being read or the input images",
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
    if _is_fit_command(sys.argv[1:] if argv is None else argv):
        _add_fit_parameters(fit)
    _add_fit_report_flags(fit)

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
    score.add_argument("--batch-size", type=int,
                       help="images per scoring batch (default: as saved)")
    score.add_argument("--device", help="'cpu', 'cuda', 'cuda:N' (default: as saved, if here)")
    _add_threshold_flags(score)
    _add_map_options(score)

    info = sub.add_parser(
        "info", help="print a fitted model's card",
        description="Print a fitted model's card: what it was trained on (source, number of "
        "images, date, duration), its settings, loss curve, kept epoch, precision, "
        "threshold and the package versions it was fitted with.",
    )
    info.add_argument("model", metavar="MODEL", help="model folder written by 'skmsc fit'")
    _add_evaluate_command(sub, files)
    _add_export_parser(sub)
    return parser


def _is_fit_command(argv) -> bool:
    positional = [a for a in argv if not str(a).startswith("-")]
    return bool(positional) and positional[0] == "fit"


def _add_fit_report_flags(fit) -> None:
    fit.add_argument("-v", "--verbose", action="store_true",
                     help="print the model card (as 'skmsc info' does) after fitting")
    fit.add_argument(
        "--evaluate", action="store_true",
        help="for an MVTec-AD or VisA category folder: after fitting on its normal "
        "training images, score its test images and print the ROC-AUC of each defect type",
    )


def _add_threshold_flags(score) -> None:
    threshold = score.add_mutually_exclusive_group()
    threshold.add_argument(
        "--contamination", metavar="FRACTION",
        help="move the threshold to flag this fraction of new normal images, 'auto' (0.01) "
        "or a number in (0, 0.5]; computed from the saved training scores, no refit "
        "(default: the model's)",
    )
    threshold.add_argument(
        "--threshold", type=float, metavar="SCORE",
        help="flag images whose score is below SCORE (a score_samples value; default: the "
        "model's offset_)",
    )


def _add_evaluate_command(sub, files) -> None:
    evaluate = sub.add_parser(
        "evaluate", parents=[files],
        help="ROC-AUC of a model on an MVTec-AD or VisA category's test images",
        description="Score the test images of an MVTec-AD or VisA category folder (test/ "
        "in the MVTec-AD layout, the test split of VisA's split_csv/1cls.csv) and print, "
        "as CSV, the ROC-AUC (normal = positive) of each defect type against the good "
        "images, then of all defects. Mask folders are never read as images.",
    )
    evaluate.add_argument("model", metavar="MODEL", help="model folder written by 'skmsc fit'")
    evaluate.add_argument("folder", metavar="CATEGORY", help="an MVTec-AD or VisA category folder")
    evaluate.add_argument("--batch-size", type=int,
                          help="images per scoring batch (default: as saved)")


def _add_export_parser(sub) -> None:
    export = sub.add_parser(
        "export", help="write a fitted model as one ONNX file (scoring without torch)",
        description="Write the model's scoring path (preprocessing, network, exact kNN "
        "against its training features) as one ONNX file taking uint8 images "
        "(N, H, W, 3) of one size. Score with skmsc.onnx.ONNXDetector, which needs only "
        "numpy and onnxruntime. Needs pip install 'skmsc[onnx]'.",
    )
    export.add_argument("model", metavar="MODEL", help="model folder written by 'skmsc fit'")
    export.add_argument("output", metavar="OUT.onnx", help="the ONNX file to write")
    export.add_argument(
        "--input-size", metavar="HxW",
        help="height x width of the images the file will take (required for models fitted "
        "on image files, which 'skmsc fit' makes; e.g. 256x256)",
    )
    export.add_argument("--overwrite", action="store_true",
                        help="replace OUT.onnx if it exists")


def _export(args) -> int:
    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise UsageError(f"{args.output} exists; pass --overwrite to replace it")
    if Path(args.model).resolve() in output.resolve().parents:
        raise UsageError("OUT.onnx is inside the model folder; write it elsewhere")
    size = None
    if args.input_size is not None:
        try:
            size = tuple(int(v) for v in args.input_size.lower().split("x"))
        except ValueError:
            size = ()
        if len(size) != 2 or min(size) < 1:
            raise UsageError(f"--input-size: expected HxW such as 256x256, got "
                             f"{args.input_size!r}")
    detector = _load_model(args.model)
    from .onnx import export_onnx

    try:
        export_onnx(detector, output, input_size=size, overwrite=args.overwrite)
    except ImportError as exc:
        raise RuntimeError(f"{exc}; pip install 'skmsc[onnx]'") from exc
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    print(f"skmsc: ONNX model written to {args.output}", file=sys.stderr)
    return EXIT_OK


def _collect(arguments: list[str], args, *, folders_only: bool) -> list[str]:
    """Image paths from folders (filtered by extension) and, for scoring, single files."""
    extensions = None if args.ext is None else [e for e in args.ext.split(",") if e.strip()]
    from .data.files import is_url, list_image_files

    paths = []
    for argument in arguments:
        path = Path(argument)
        if is_url(argument):
            raise UsageError(f"URLs are not fetched: {argument}. Download the images first "
                             "and pass the local files or folder.")
        layout = _defect_images(path, folders_only)
        if layout is not None:
            paths += layout
        elif path.is_dir():
            paths += list_image_files(path, recursive=args.recursive, extensions=extensions)
        elif folders_only:
            raise UsageError(f"not a folder: {argument}")
        elif path.exists():
            paths.append(argument)
        else:
            raise UsageError(f"no such file or folder: {argument}")
    if not paths:
        raise UsageError(f"no image files found in {' '.join(arguments)}"
                         + _what_the_filter_left(arguments, extensions, args.recursive))
    return paths


def _what_the_filter_left(arguments: list[str], extensions, recursive: bool) -> str:
    """For the "no image files found" error: the --ext filter and what it left out."""
    if extensions is None:
        return ""
    from .data.files import list_image_files

    found = Counter()
    for argument in arguments:
        if Path(argument).is_dir():
            found.update(Path(p).suffix.lower()
                         for p in list_image_files(argument, recursive=recursive))
    wanted = ", ".join(extensions)
    if not found:
        return f" with --ext {wanted} (nor any other image files)"
    others = ", ".join(f"{n} {suffix}" for suffix, n in sorted(found.items()))
    return (f" with --ext {wanted}; found {others} file(s): pass --ext with those "
            "extensions, or leave --ext out to take every image format")


def _defect_images(path: Path, training: bool) -> list[str] | None:
    """For an MVTec-AD or VisA category folder: its normal training images (``fit``) or its
    test images (``score``), with a note on stderr; ``None`` for any other path. Mask
    folders are never listed as images."""
    from .datasets import find_defect_layout, load_defect_folder

    layout = find_defect_layout(path) if path.is_dir() else None
    if layout is None:
        if path.is_dir():
            categories = [p.name for p in sorted(path.iterdir())
                          if p.is_dir() and find_defect_layout(p)]
            if categories:  # listing it would mix categories, test images and masks
                raise UsageError(
                    f"{path} holds MVTec-AD/VisA categories ({', '.join(categories[:4])}"
                    f"{', ...' if len(categories) > 4 else ''}): pass one category folder, "
                    f"e.g. {path / categories[0]}"
                )
        return None
    split = load_defect_folder(path)
    name = "MVTec-AD" if layout == "mvtec" else "VisA"
    if training:
        where = path / "train" / "good" if layout == "mvtec" else "the training split"
        print(f"skmsc: {path} is an {name} category: fitting on the {len(split.X_train)} "
              f"normal images of {where} (test images and masks are left out)",
              file=sys.stderr)
        return split.X_train.tolist()
    print(f"skmsc: {path} is an {name} category: scoring its {len(split.X_test)} test "
          "images (not the training images, not the masks)", file=sys.stderr)
    return split.X_test.tolist()


def _readable(paths: list[str], args) -> list[str]:
    if not args.skip_unreadable:
        return paths
    from .data.files import find_unreadable

    failures = find_unreadable(paths, n_workers=args.workers, bit_depth=args.bit_depth)
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
    # The output and the files are checked before torch is imported: mistakes show at once.
    _check_model_output(args.output, args.normal_dir, args.overwrite)
    if args.evaluate:
        _check_evaluable(args.normal_dir)
    paths = _readable(_collect(args.normal_dir, args, folders_only=True), args)

    from ._estimators import MeanShiftedContrastiveDetector
    from .data.files import ImageFiles

    # Flags left unset are not in args (argparse.SUPPRESS): the estimator's defaults hold.
    params = {name: getattr(args, name) for name, _, _ in fit_parameters()
              if hasattr(args, name)}
    detector = MeanShiftedContrastiveDetector(**params, verbose=not args.quiet)
    detector.check_params()  # bad values are usage errors, reported before fitting
    print(f"skmsc: fitting on {len(paths)} images", file=sys.stderr)
    detector.fit(ImageFiles(paths, n_workers=args.workers, bit_depth=args.bit_depth))
    detector.set_params(verbose=False)
    detector.save(args.output)  # atomic: an existing model stays whole if this fails
    print(f"skmsc: model written to {args.output}", file=sys.stderr)
    if args.verbose:
        _print_card(detector, args.output, file=sys.stderr)
    if args.evaluate:
        return _evaluate_on(detector, args.normal_dir, args)
    return EXIT_OK


def _score(args) -> int:
    from .data.files import ImageFiles

    _check_map_options(args)
    if args.csv is not None:
        _check_csv_output(args.csv, args.model, args.images, args.overwrite)
    paths = _readable(_collect(args.images, args, folders_only=False), args)
    if args.csv is not None and _inside(args.csv, paths):
        raise UsageError(f"--csv {args.csv}: is one of the images to score; skmsc never "
                         "writes over its input")
    detector = _load_model(args.model)
    detector.set_params(verbose=not args.quiet)
    if args.batch_size is not None:
        detector.set_params(batch_size=args.batch_size).check_params()
    if args.device is not None:
        _move(detector, args.device)
    normal = _normal_images(detector, args)  # checked before any image is scored
    offset = _score_threshold(detector, args)
    scores = detector.score_samples(
        ImageFiles(paths, n_workers=args.workers, bit_depth=args.bit_depth))
    decisions = scores - offset
    map_paths = _map_paths(paths, scores, offset, args)
    rows = list(zip(paths, scores, decisions, map_paths or [None] * len(paths),
                    strict=True))
    if args.sort == "score":
        rows.sort(key=lambda row: row[1])
    elif args.sort == "path":
        rows.sort(key=lambda row: row[0])
    data = _csv_bytes(rows, with_maps=map_paths is not None)
    if args.csv is not None:
        write_file_atomically(args.csv, lambda file: file.write(data))
    else:
        _write_stdout(data)
    n_anomalies = int((decisions < 0).sum())
    print(f"skmsc: scored {len(rows)} images, {n_anomalies} flagged as anomalies",
          file=sys.stderr)
    _write_maps(detector, paths, scores, offset, normal, map_paths, args)
    return EXIT_OK


# ------------------------------------------------------------ skmsc score --maps DIR
def _add_map_options(score) -> None:
    score.add_argument(
        "--maps", metavar="DIR",
        help="write a PNG per flagged image into DIR (new or empty): the image, its anomaly "
        "map with score and decision, and (with --normal) its nearest normal image. DIR "
        "mirrors the input folders (IMAGES/sub/x.jpg -> DIR/sub/x.jpg.png) and the CSV "
        "gains a map column naming each flagged image's PNG",
    )
    score.add_argument(
        "--map-method", choices=["patch", "layercam", "gradient", "occlusion"], default=None,
        help="how the maps are computed (default: the detector's, patch: each place's "
        "distance to the nearest normal patch; layercam and gradient explain the image's "
        "score, gradient coarse below 224 px); occlusion is many times slower",
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
    if _inside(maps, [args.model]):
        raise UsageError(f"--maps: {args.maps} lies inside the model folder {args.model}; "
                         "choose a folder outside it")
    if not args.overwrite and _inside(maps, [p for p in args.images if Path(p).is_dir()]):
        raise UsageError(f"--maps: {args.maps} is inside an input folder, so a later run "
                         "would score the maps; pass --overwrite to write there anyway, or "
                         "choose another folder")
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise RuntimeError("--maps needs matplotlib: pip install 'skmsc[plot]'")


def _map_file_names(paths: list[str], arguments: list[str]) -> list[str]:
    """Where each image's map goes under the --maps folder: the input tree mirrored.

    Each image keeps its path relative to the folder all the inputs share (the input
    folder itself when there is one) and its whole file name, with ``.png`` appended:
    ``sub/021_2.jpg`` becomes ``sub/021_2.jpg.png``, so no two images share a map. An
    image listed twice gets ``-2``, ``-3``, ... before ``.png``.
    """
    roots = [os.path.abspath(a) if Path(a).is_dir() else os.path.dirname(os.path.abspath(a))
             for a in arguments]
    try:
        common = os.path.commonpath(roots)
    except ValueError:  # e.g. inputs on two Windows drives: no common folder
        common = None
    names, seen = [], {}
    for path in paths:
        relative = (Path(path).name if common is None
                    else Path(os.path.relpath(os.path.abspath(path), common)).as_posix())
        seen[relative] = seen.get(relative, 0) + 1
        count = seen[relative]
        names.append(f"{relative}.png" if count == 1 else f"{relative}-{count}.png")
    return names


def _map_paths(paths: list[str], scores, threshold: float, args) -> list[str] | None:
    """The map file of each image ('' for images not flagged); ``None`` without --maps."""
    if args.maps is None:
        return None
    flagged = [i for i, score in enumerate(scores) if score - threshold < 0]
    names = _map_file_names([paths[i] for i in flagged], args.images)
    out = [""] * len(paths)
    for i, name in zip(flagged, names, strict=True):
        out[i] = os.path.join(args.maps, *name.split("/"))
    return out


def _normal_images(detector, args):
    """The ``--normal`` training images in fit's order (``None`` without ``--normal``); a
    usage error unless they can be the model's nearest normals."""
    if args.normal is None:
        return None
    from .data.files import ImageFiles
    from .plotting import check_neighbours_are_training_images

    try:
        check_neighbours_are_training_images(detector)
    except ValueError as exc:
        raise UsageError(f"--normal: {exc}") from None
    normal = ImageFiles(_readable(_collect(args.normal, args, folders_only=True), args),
                        n_workers=0)
    if len(normal) != len(detector.train_features_):
        raise UsageError(
            f"--normal lists {len(normal)} images but the model was fitted on "
            f"{len(detector.train_features_)}: give the folders (and --ext) it was "
            "fitted with"
        )
    return normal


def _write_maps(detector, paths: list[str], scores, threshold: float, normal,
                map_paths, args) -> None:
    """One overlay PNG per flagged image (score below ``threshold``, as in the CSV), at
    its ``map_paths`` entry, one image at a time; each shows the score the CSV lists."""
    if map_paths is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .data.files import ImageFiles
    from .plotting import plot_anomaly_maps

    out = Path(args.maps)
    out.mkdir(parents=True, exist_ok=True)
    detector.set_params(verbose=False)
    n_written = 0
    for path, score, target in zip(paths, scores, map_paths, strict=True):
        if not target:
            continue
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        fig = plot_anomaly_maps(detector, ImageFiles([path], n_workers=0), normal,
                                method=args.map_method, scores=[score], threshold=threshold)
        fig.savefig(target, dpi=110, bbox_inches="tight")
        plt.close(fig)
        n_written += 1
    print(f"skmsc: wrote {n_written} anomaly maps to {out} (their paths are in the CSV's "
          "map column)", file=sys.stderr)


# ------------------------------------------------------------ CSV and output checks
# Cell starts a spreadsheet reads as a formula (OWASP's list, their full-width forms), and
# the quote that marks an escaped cell, so that removing one leading quote is exact.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20",
                   "'")


def spreadsheet_safe(cell: str) -> str:
    """``cell`` with a leading ``'`` if a spreadsheet would run it as a formula (OWASP).

    Examples
    --------
    >>> from skmsc.cli import spreadsheet_safe
    >>> spreadsheet_safe("=1+2"), spreadsheet_safe("-x.png"), spreadsheet_safe("img/1.png")
    ("'=1+2", "'-x.png", 'img/1.png')
    """
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def _csv_bytes(rows, *, with_maps: bool = False) -> bytes:
    """The whole CSV, encoded; file names that are not UTF-8 keep their own bytes.

    ``rows`` are ``(path, score, decision, map_path)``; the ``map`` column (the map file
    of each flagged image, empty for the others) is written only ``with_maps``."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["path", "score", "decision", "label"] + (["map"] if with_maps else []))
    for path, score, decision, map_path in rows:
        # repr keeps every digit, so the file reproduces score_samples exactly.
        label = "anomaly" if decision < 0 else "normal"
        writer.writerow([spreadsheet_safe(path), repr(float(score)), repr(float(decision)),
                         label] + ([spreadsheet_safe(map_path)] if with_maps else []))
    return text.getvalue().encode("utf-8", "surrogateescape")


def _write_stdout(data: bytes) -> None:
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a replaced sys.stdout (e.g. in tests) takes text
        sys.stdout.write(data.decode("utf-8", "replace"))
        return
    sys.stdout.flush()
    buffer.write(data)
    buffer.flush()


def _resolved(path) -> str:
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def _inside(path, folders) -> bool:
    """Whether ``path`` is one of ``folders`` (or files) or lies inside one of them."""
    target = _resolved(path)
    for folder in folders:
        folder = _resolved(folder)
        if target == folder or target.startswith(folder.rstrip(os.sep) + os.sep):
            return True
    return False


def _check_model_output(output, inputs, overwrite: bool) -> None:
    """A usage error unless ``-o`` may be written (checked before any work)."""
    from .persistence import JSON_NAME, TENSORS_NAME, check_replaceable

    path = Path(output)
    try:
        check_replaceable(Path(_resolved(path)))
    except ValueError as exc:
        raise UsageError(f"-o {output}: {exc}") from None
    if not overwrite:
        if path.is_dir() and set(os.listdir(path)) & {JSON_NAME, TENSORS_NAME}:
            raise UsageError(f"-o {output}: holds a saved model; pass --overwrite to replace "
                             "it")
        if _inside(path, [p for p in inputs if Path(p).is_dir()]):
            raise UsageError(f"-o {output}: is inside an input folder; pass --overwrite to "
                             "write there anyway, or choose another folder")


def _check_csv_output(output, model, inputs, overwrite: bool) -> None:
    """A usage error unless ``--csv`` may be written (checked before any work)."""
    path = Path(output)
    if _inside(path, [model]):
        raise UsageError(f"--csv {output}: lies in the model folder {model}; skmsc never "
                         "writes into the model it reads. Choose another file.")
    if _inside(path, [p for p in inputs if not Path(p).is_dir()]):
        raise UsageError(f"--csv {output}: is one of the images to score; skmsc never writes "
                         "over its input")
    if path.is_dir():
        raise UsageError(f"--csv {output}: is a folder; give a file name")
    if not path.parent.is_dir():
        raise UsageError(f"--csv {output}: folder {path.parent} does not exist")
    if overwrite:
        return
    if os.path.lexists(path):
        raise UsageError(f"--csv {output}: exists; pass --overwrite to replace it")
    # Folders given, and the folders of the files given (a shell expands imgs/*.png).
    folders = [p if Path(p).is_dir() else Path(p).parent for p in inputs]
    if _inside(path, folders):
        raise UsageError(f"--csv {output}: is inside an input folder; pass --overwrite to "
                         "write there anyway, or choose another file")


def _info(args) -> int:
    _print_card(_load_model(args.model), args.model, file=sys.stdout)
    return EXIT_OK


def _print_card(detector, folder, *, file) -> None:
    """``detector.model_card()``, one ``key: value`` line per entry, in its order: the card
    decides what is shown, this only words the values."""
    card = detector.model_card()
    print(f"model: {folder}", file=file)
    for key, value in card.items():
        print(f"{key}: {_card_text(key, value, card)}", file=file)


def _card_text(key: str, value, card: dict) -> str:
    """One model-card value as ``skmsc info`` prints it."""
    if key == "weights":
        return _weights_line(value, card.get("weights_file"))
    if key == "backbone" and value is None:
        return "none (fitted on feature vectors)"
    if key == "validation_scores" and value is None:
        return "off (no safeguard)"
    if key == "input_shape" and value is None:
        return "any (fitted on image files)"
    if value is None:
        return ("not recorded" if key in ("training_source", "n_samples_fit", "fit_started",
                                          "fit_seconds", "skmsc_version") else "none")
    if key == "fit_seconds":
        return _duration(value)
    if key == "best_epoch":
        return f"{value} (0 = the pretrained network)"
    if key == "contamination_fraction":
        return f"{value:g} (of new normal images flagged)"
    if key == "input_shape":
        return "x".join(str(v) for v in value)
    if key == "reference_patches":
        return f"{value[0]} normal patches of {value[1]} channels (for method='patch' maps)"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(f"{v:.4f}" for v in value) or "none"
    return str(value)


def _weights_line(weights: str | None, weights_file: str | None) -> str:
    """Where the network's starting weights came from, as the model card says it."""
    if weights == "random":
        return ("random: random initialisation (weights=None), not pretrained; scores mean "
                "little (for tests only)")
    if weights == "imagenet":
        return "imagenet (the backbone's pretrained ImageNet weights)"
    if weights == "file":
        return f"file: {weights_file}"
    return "none (no network)"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{seconds:.1f} s"


def _score_threshold(detector, args) -> float:
    """The threshold in score units: the model's, or the one --contamination/--threshold
    asks for."""
    if getattr(args, "threshold", None) is not None:
        return float(args.threshold)
    contamination = getattr(args, "contamination", None)
    if contamination is not None:
        value = contamination if contamination == "auto" else _number(
            contamination, float, "--contamination")
        from sklearn.utils._param_validation import InvalidParameterError

        try:
            detector.set_threshold(value)
        except InvalidParameterError as exc:
            raise UsageError(f"--contamination: {exc}") from None
    return detector.offset_


def _evaluate(args) -> int:
    _check_evaluable([args.folder])
    detector = _load_model(args.model)
    detector.set_params(verbose=not args.quiet)
    if args.batch_size is not None:
        detector.set_params(batch_size=args.batch_size).check_params()
    return _evaluate_on(detector, [args.folder], args)


def _check_evaluable(folders) -> None:
    from .datasets import find_defect_layout

    if len(folders) != 1 or find_defect_layout(Path(folders[0])) is None:
        raise UsageError(f"not an MVTec-AD or VisA category folder: {' '.join(folders)} "
                         "(expected train/good/ and test/<defect>/, or VisA's Data/Images/)")


def _evaluate_on(detector, folders, args) -> int:
    """Print the per-defect ROC-AUC of ``detector`` on the test images of a category."""
    from .data.files import ImageFiles
    from .datasets import load_defect_folder
    from .model_selection import normal_roc_auc_by_group

    _check_evaluable(folders)
    split = load_defect_folder(folders[0])
    if split.y_test.all() or not split.y_test.any():
        raise UsageError(f"{folders[0]}: the test images must include good and defective ones")
    scores = detector.score_samples(ImageFiles(split.X_test.tolist(), n_workers=args.workers,
                                               bit_depth=args.bit_depth))
    aucs = normal_roc_auc_by_group(split.y_test, scores, split.defect_type)
    counts = {d: int(np.sum(split.defect_type == d)) for d in aucs if d != "all"}
    counts["all"] = int(np.sum(split.y_test == 0))
    n_good = int(split.y_test.sum())
    writer = csv.writer(sys.stdout)
    writer.writerow(["defect", "n_defective", "n_good", "roc_auc"])
    for defect, auc in aucs.items():
        writer.writerow([defect, counts[defect], n_good, f"{auc:.4f}"])
    print(f"skmsc: ROC-AUC (normal = positive) on {split.category}: {aucs['all']:.4f} over "
          f"{len(split.X_test)} test images", file=sys.stderr)
    return EXIT_OK


def _move(detector, device: str) -> None:
    try:
        detector.set_device(device)
    except (ValueError, RuntimeError) as exc:
        raise UsageError(str(exc)) from exc


def _non_negative_int(text: str) -> int:
    """argparse type of ``--workers``: a bad value is a usage error naming the flag."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _bit_depth(text: str) -> int:
    """argparse type of ``--bit-depth``: an integer in [1, 16]."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 16:
        raise argparse.ArgumentTypeError(f"expected an integer in [1, 16], got {text!r}")
    return value


def _number(text: str, kind, flag: str):
    try:
        return kind(text)
    except ValueError:
        raise UsageError(f"{flag}: expected 'auto' or a number, got {text!r}") from None


@contextlib.contextmanager
def _warnings_as_messages():
    """Warnings as one ``skmsc: <Category>: message`` line each on stderr (not Python's
    file:line format); the process's own settings come back after the command."""
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"skmsc: {category.__name__}: {_one_line(message)}", file=sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


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
    args = _parser(argv).parse_args(argv)  # exits with 2 on usage errors, 0 on --help
    commands = {"fit": _fit, "score": _score, "info": _info, "evaluate": _evaluate,
                "export": _export}
    try:
        with _warnings_as_messages():
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
        from .data.files import ImageNotFoundError, UnreadableImageError

        if isinstance(exc, UnreadableImageError | ImageNotFoundError):
            hint = " (--skip-unreadable leaves such files out)"
        print(f"skmsc {args.command}: error: {_one_line(exc)}{hint}", file=sys.stderr)
        return EXIT_FAILURE
