import os
import sys
from pathlib import Path

# On this project's 2-core VMs, OpenMP threads that spin while waiting make small
# convolutions up to 25x slower (measured: ResNet18 on 8 images of 32x32, 0.64 s with
# spinning, 0.014 s passive). Must be set before torch starts its thread pool.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

# Two intra-op threads (these VMs have 2 cores), unless OMP_NUM_THREADS says otherwise:
# `make test-fast` sets it to 1 and runs one pytest-xdist worker per core. With PASSIVE
# waiting, waking the second thread for every small operation costs more than it saves on
# the quick tests' tiny networks (measured on an idle VM, EfficientNet-Lite0 at 32 px,
# 40 images, 1 epoch: 1.46 s on 2 threads, 0.82 s on 1); `make test` keeps two, so
# multi-threaded kernels stay tested.
_threads = os.environ.get("OMP_NUM_THREADS", "")
torch.set_num_threads(int(_threads) if _threads.isdigit() and int(_threads) > 0 else 2)

#: Settings that make a real fit take seconds: the offline backbone on tiny images.
#: Tests import them (``from conftest import FAST``) instead of keeping copies.
FAST_UNSEEDED = dict(backbone="efficientnet_lite0", batch_size=8, image_size=32)
FAST = dict(FAST_UNSEEDED, random_state=0)


@pytest.fixture(autouse=True)
def _close_figures():
    """Close the figures a test opened (where matplotlib is in use at all)."""
    yield
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


@pytest.fixture(scope="session")
def digits():
    """Real 8x8 handwritten digits as float images in [0, 1], shipped with scikit-learn."""
    X, y = load_digits(return_X_y=True)
    return (X.reshape(-1, 8, 8) / 16.0), y


@pytest.fixture(scope="session")
def small_rgb_images():
    """30 random uint8 RGB images; for tests that need shapes, not meaning."""
    return np.random.default_rng(0).integers(0, 256, size=(30, 20, 24, 3), dtype=np.uint8)


@pytest.fixture(scope="session")
def fitted_lite0(digits):
    """A small real fit shared by tests that only read from it."""
    from skmsc import MeanShiftedContrastiveDetector

    X, y = digits
    det = MeanShiftedContrastiveDetector(**{**FAST, "batch_size": 16}, epochs=1)
    return det.fit(X[y == 0][:48])


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """A folder of real image files of mixed formats, sizes and modes, plus bad files.

    normal/: 24 handwritten zeros (scikit-learn digits, 8x8 grayscale PNG), some in a
    sub-folder; test/: 16 digits of every class as PNG, the same pixels as uint8 arrays.
    other/: scikit-image photos (RGB of several sizes, grayscale, RGBA), a palette PNG,
    JPEGs (one with an EXIF rotation); bad/: a non-image and a truncated PNG.
    """
    from types import SimpleNamespace

    from PIL import Image
    from skimage import data

    root = tmp_path_factory.mktemp("images")
    for sub in ("normal/more", "test", "other", "bad"):
        (root / sub).mkdir(parents=True)
    X, y = load_digits(return_X_y=True)
    X = (X.reshape(-1, 8, 8) * 255 / 16).round().astype(np.uint8)
    zeros = np.flatnonzero(y == 0)[:24]
    normal = []
    for k, i in enumerate(zeros):
        relative = Path("more" if k % 3 == 0 else "") / f"zero_{i:04d}.png"
        Image.fromarray(X[i]).save(root / "normal" / relative)
        normal.append((relative.as_posix(), str(root / "normal" / relative), i))
    normal.sort()  # the order in which list_image_files walks the folder
    test_rows = np.concatenate([np.flatnonzero(y == c)[30:32] for c in range(8)])
    test = []
    for i in test_rows:
        test.append(str(root / "test" / f"digit{y[i]}_{i:04d}.png"))
        Image.fromarray(X[i]).save(test[-1])
    jpeg = []
    for i in test_rows[::4]:
        jpeg.append(str(root / "other" / f"digit_{i:04d}.jpg"))
        Image.fromarray(X[i]).convert("RGB").resize((24, 24)).save(jpeg[-1], quality=90)
    other = {}
    for name, image in [
        ("astronaut.jpg", data.astronaut()[::4, ::4]),  # 128x128 RGB
        ("coffee.png", data.coffee()[::5, ::5]),  # 80x120 RGB
        ("chelsea.png", data.chelsea()),  # 300x451 RGB
        ("camera_gray.png", data.camera()[::4, ::4]),  # 128x128 grayscale
        ("logo_rgba.png", data.logo()[::5, ::5]),  # 100x100 RGBA
    ]:
        other[name] = str(root / "other" / name)
        Image.fromarray(image).save(other[name])
    assert Image.open(other["logo_rgba.png"]).mode == "RGBA"
    palette = Image.fromarray(data.coffee()[::6, ::6]).convert("P", palette=Image.ADAPTIVE)
    other["coffee_palette.png"] = str(root / "other" / "coffee_palette.png")
    palette.save(other["coffee_palette.png"])
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated by 90 degrees
    other["rotated.jpg"] = str(root / "other" / "rotated.jpg")
    Image.fromarray(data.chelsea()[::6, ::4]).save(other["rotated.jpg"], exif=exif.tobytes())
    garbage = root / "bad" / "not_an_image.png"
    garbage.write_bytes(b"this is not a PNG file")
    truncated = root / "bad" / "truncated.png"
    truncated.write_bytes(Path(other["chelsea.png"]).read_bytes()[:3000])
    return SimpleNamespace(
        root=root, normal=[path for _, path, _ in normal],
        normal_array=X[[i for _, _, i in normal]],
        test=test, test_array=X[test_rows], test_labels=y[test_rows], jpeg=jpeg,
        other=other, garbage=str(garbage), truncated=str(truncated),
    )


# Tests that took 2 s or more on the project's 2-core VMs (pytest --durations): marked
# slow, so that `make test-fast` (-m "not slow", two workers) stays near a minute.
# `make test` runs them.
SLOW_TESTS = {
    "test_cli.py::*",  # its fitted-model fixture alone takes ~9 s
    "test_benchmarks.py::test_resume_keeps_finished_classes",
    # Many quick cases that add up: scikit-learn's common checks and hypothesis searches.
    "test_sklearn_contract.py::test_sklearn_common_checks",
    "test_feature_pipeline.py::test_sklearn_common_checks",
    "test_input_validation.py::test_feature_detector_scoring_gives_scores_or_a_clear_error",
    "test_input_validation.py::test_image_detector_scoring_on_random_valid_and_invalid_images",
    "test_input_validation.py::test_input_container_check_raises_only_clear_errors",
    "test_input_validation.py::test_check_image_array_accepts_only_valid_batches",
    "test_neighbors.py::test_nndescent_finds_the_exact_neighbours_on_easy_data",
    # pynndescent compiles its numba code for ~30 s in a fresh process: the tests that
    # build a real graph run in `make test` only.
    "test_neighbors.py::test_nndescent_recall_on_real_digit_vectors",
    "test_detector_images.py::test_end_to_end_auc_on_real_digits",
    "test_model_selection.py::test_grid_search_on_images_with_parallel_workers",
    "test_feature_pipeline.py::test_cached_search_fine_tunes_once_per_setting_and_fold",
    "test_cli.py::test_fit_and_score_match_the_python_api_and_the_array",
    "test_cli.py::test_unreadable_file_fails_with_1_naming_it",
    "test_dask.py::test_grid_search_runs_on_the_cluster",
    "test_dask.py::test_features_of_a_dask_array_without_a_cluster",
    "test_architecture.py::test_fit_and_score_never_import_the_dataset_loaders",
    "test_benchmarks.py::test_learning_curves_and_their_report_section",
    "test_benchmarks.py::test_report_has_table_and_plots",
    "test_benchmarks.py::test_benchmark_writes_results",
    "test_detector_images.py::test_same_random_state_same_scores_and_global_rng_untouched",
    "test_detector_images.py::test_accepted_image_formats_give_the_same_scores",
    "test_detector_images.py::test_center_is_the_mean_of_pretrained_features",
    "test_detector_images.py::test_pipeline_and_grid_search_on_images",
    "test_docs.py::test_built_pages_render_in_chromium",
    "test_docs.py::test_guide_examples",
    "test_precision_and_chunks.py::test_bfloat16_fine_tuning_gives_a_finite_loss",
    "test_precision_and_chunks.py::test_loss_scaling_only_for_float16",
    "test_feature_pipeline.py::test_features_then_knn_scores_exactly_as_the_detector",
    "test_determinism_and_load.py::test_scores_do_not_depend_on_the_scoring_batch_size",
    "test_determinism_and_load.py::test_two_cpu_fits_with_an_int_seed_are_identical",
    "test_faults.py::test_out_of_memory_halves_the_fine_tuning_batch_and_finishes",
    "test_backbones.py::test_explicit_weight_path_with_or_without_classifier",
    # Issue #16's reliability tests that run subprocesses or race threads for seconds.
    "test_atomic_save.py::test_full_disk_in_a_subprocess_keeps_the_old_model",
    "test_atomic_save.py::test_sigkill_between_the_renames_still_loads",
    "test_fit_integrity.py::test_scoring_while_another_thread_refits_sees_one_model_or_the_other",
    "test_fit_integrity.py::test_transform_and_save_while_another_thread_refits",
    "test_fuzz_reliability.py::test_6_a_fit_is_finite_or_a_divergence_error_that_changes_nothing",
    # Each ONNX export takes 5-15 s (torch's exporter); only the resize checks are quick.
    "test_onnx_export.py::test_lite0_export_scores_as_the_detector",
    "test_onnx_export.py::test_resnet_export_scores_as_the_detector",
    "test_onnx_export.py::test_openvino_runs_the_file_with_the_same_scores",
    "test_onnx_export.py::test_exported_file_passes_the_checker_and_holds_its_metadata",
    "test_onnx_export.py::test_runtime_needs_neither_torch_nor_scikit_learn",
    "test_onnx_export.py::test_grayscale_nndescent_detector_exports_the_exact_search",
    "test_onnx_export.py::test_bfloat16_gallery_exports_with_a_warning",
    "test_onnx_export.py::test_export_refuses_what_it_cannot_export",
    "test_onnx_export.py::test_runtime_refuses_bad_images_with_the_fix",
    "test_onnx_export.py::test_cli_export_of_a_file_fitted_model",
    # The two ONNX docstring examples each export a network (torch's exporter, ~10 s);
    # the other modules' examples stay in the quick loop.
    "test_docs.py::test_docstring_examples[skmsc.onnx._export]",
    "test_docs.py::test_docstring_examples[skmsc.onnx._runtime]",
    "test_onnx_export.py::test_array_fitted_detector_exports_another_input_size",
    "test_gpu_check.py::test_gpu_check_dry_run_records_every_step",
    "test_deploy_benchmarks.py::*",
    "test_growing_gallery.py::test_partial_fit_equals_a_fresh_knn_fit_on_the_union",
    "test_growing_gallery.py::test_nearest_normals_plot_refuses_a_reduced_gallery",
    # Real data sets scored in full to check the conformal guarantee (5-17 s each).
    "test_conformal.py::test_false_alarm_guarantee_on_held_out_fashion_mnist_trousers",
    "test_conformal.py::test_false_alarm_guarantee_on_held_out_defect_free_solar_cells",
    "test_anomaly_maps.py::test_two_fits_with_one_random_state_give_identical_maps",
    "test_cli_maps.py::*",
    # Decodes all 2,624 images of the installed ELPV package (~4.3 s); the quick
    # test_load_elpv_finds_the_installed_package_and_splits_its_labels checks the same
    # package, labels and split with three images decoded.
    "test_datasets.py::test_load_elpv_installed_package_when_present",
}


def pytest_collection_modifyitems(items):
    for item in items:
        names = {f"{item.path.name}::{item.originalname}", f"{item.path.name}::*",
                 f"{item.path.name}::{item.name}"}  # the last: one parametrized case
        if names & SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
