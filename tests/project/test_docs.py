"""The documentation: docstring and guide examples run, every public object is documented,
and the built site renders in a browser.

The Sphinx build itself (warnings as errors) is ``make docs``, which ``make test`` runs
before pytest; the rendering test looks at what that build wrote.
"""

import doctest
import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

import numpy as np
import pytest

import skmsc

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
HTML = DOCS / "_build" / "html"
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS))

from api_pages import public_modules, public_names  # noqa: E402

DOCTEST_FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
# Every module's docstrings, private ones too; not __main__, whose import runs a program.
ALL_MODULES = sorted(
    [skmsc.__name__]
    + [
        m.name for m in pkgutil.walk_packages(skmsc.__path__, prefix="skmsc.")
        if not m.name.endswith(".__main__")
    ]
)


def _report(runner_output: list[str]) -> str:
    return "".join(runner_output)[-4000:]


@pytest.mark.parametrize("module_name", ALL_MODULES)
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    output = []
    runner = doctest.DocTestRunner(optionflags=DOCTEST_FLAGS)
    for test in doctest.DocTestFinder().find(module, module_name):
        runner.run(test, out=output.append)
    assert runner.failures == 0, _report(output)


@pytest.mark.parametrize(
    "page", sorted(p.relative_to(DOCS).as_posix() for p in DOCS.glob("guide/*.rst"))
)
def test_guide_examples(page):
    output = []
    parser = doctest.DocTestParser()
    text = (DOCS / page).read_text()
    test = parser.get_doctest(text, {}, page, str(DOCS / page), 0)
    runner = doctest.DocTestRunner(optionflags=DOCTEST_FLAGS)
    runner.run(test, out=output.append)
    assert runner.failures == 0, _report(output)


def _public_objects():
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        for name in public_names(module_name):
            yield module_name, name, getattr(module, name)


@pytest.mark.parametrize(
    "module_name, name",
    [(m, n) for m, n, obj in _public_objects() if inspect.isclass(obj) or inspect.isroutine(obj)],
)
def test_every_public_class_and_function_has_an_example(module_name, name):
    obj = getattr(importlib.import_module(module_name), name)
    doc = inspect.getdoc(obj) or ""
    assert "Examples\n--------" in doc, (
        f"{module_name}.{name} has no 'Examples' section in its docstring: its API page "
        "would show no example. Add one (numpydoc format)."
    )


def test_every_public_constant_has_a_doc_comment():
    from sphinx.pycode import ModuleAnalyzer

    missing = []
    for module_name, name, obj in _public_objects():
        if inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj):
            continue
        analyzer = ModuleAnalyzer.for_module(module_name)
        analyzer.analyze()
        if ("", name) not in analyzer.attr_docs:
            missing.append(f"{module_name}.{name}")
    assert not missing, f"constants without a '#:' doc comment above them: {missing}"


def test_api_pages_list_every_public_module_and_object(tmp_path):
    from api_pages import write_api_pages

    modules = write_api_pages(tmp_path)
    assert "skmsc" in modules and "skmsc.datasets" in modules
    assert not any(part.startswith("_") for m in modules for part in m.split("."))
    index = (tmp_path / "api" / "index.rst").read_text()
    for module_name in modules:
        assert f"   {module_name}\n" in index
        page = (tmp_path / "api" / f"{module_name}.rst").read_text()
        for name in public_names(module_name):
            assert f"   {name}\n" in page or f".. autodata:: {name}\n" in page
    assert "   MeanShiftedContrastiveDetector\n" in (tmp_path / "api" / "skmsc.rst").read_text()


def test_offline_inventories_are_valid(tmp_path):
    from offline_intersphinx import PROJECTS, intersphinx_mapping
    from sphinx.util.inventory import InventoryFile

    mapping = intersphinx_mapping(tmp_path)
    assert set(mapping) == set(PROJECTS)
    root, path = mapping["sklearn"]
    with open(path, "rb") as f:
        inventory = InventoryFile.load(f, root, lambda base, uri: base + uri)
    entries = inventory.data if hasattr(inventory, "data") else inventory
    item = entries["py:class"]["sklearn.model_selection.GridSearchCV"]
    uri = item.uri if hasattr(item, "uri") else item[2]  # Sphinx >= 8.2 / older
    assert uri == (
        "https://scikit-learn.org/stable/modules/generated/"
        "sklearn.model_selection.GridSearchCV.html#sklearn.model_selection.GridSearchCV"
    )


# --------------------------------------------------------------- the built site, in Chromium
def _built_page(relative):
    page = HTML / relative
    if not page.is_file():
        pytest.skip(f"docs not built ({page} missing): run 'make docs' first")
    return page


@pytest.fixture(scope="module")
def chromium():
    import screenshot

    if screenshot.find_chromium() is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    return screenshot


@pytest.mark.slow
@pytest.mark.parametrize(
    "key, must_contain",
    [
        ("index", ["User guide", "MeanShiftedContrastiveDetector"]),
        ("detector_api", ["Parameters", "score_samples", "Examples",
                          "Gallery examples using"]),
        ("gallery_digits", ["ROC-AUC", "Finding anomalous handwritten digits"]),
    ],
)
def test_built_pages_render_in_chromium(chromium, tmp_path, key, must_contain):
    from PIL import Image

    page = _built_page(chromium.PAGES[key])
    dom = chromium.rendered_dom(page)
    for text in must_contain:
        assert text in dom, f"{text!r} not in the rendered {page.name}"
    # Every image the page shows must exist (figures, thumbnails, logos).
    import re

    for src in re.findall(r'<img[^>]+src="([^"]+)"', dom):
        if not src.startswith(("data:", "http")):
            target = (page.parent / src.split("#")[0].split("?")[0]).resolve()
            assert target.is_file(), f"{page.name} shows a missing image {src}"
    png = chromium.screenshot(page, tmp_path / f"{key}.png", width=1280, height=1000)
    pixels = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert pixels.shape == (1000, 1280)
    # A rendered page: mostly light background with a fair amount of dark text on it
    # (a blank or failed render is uniform).
    dark = np.mean(pixels < 128)
    assert 0.01 < dark < 0.5, f"{key}: {dark:.1%} dark pixels"
    assert pixels.std() > 20


def test_gallery_figure_is_in_the_built_example():
    page = _built_page("auto_examples/plot_digits_anomalies.html")
    html = page.read_text()
    assert "sphx_glr_plot_digits_anomalies_001.png" in html
    assert "ROC-AUC (normal = positive):" in html


def test_intersphinx_links_resolve_in_the_built_api_page():
    page = _built_page("api/generated/skmsc.MeanShiftedContrastiveDetector.html")
    html = page.read_text()
    assert (
        "https://scikit-learn.org/stable/modules/generated/"
        "sklearn.neighbors.LocalOutlierFactor.html" in html
    )
