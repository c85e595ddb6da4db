"""Sphinx configuration of the skmsc documentation (build: ``make docs``)."""

import os
import sys
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# Document (and run the gallery against) this checkout, not another installed copy.
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))
# Before torch is imported by the examples: idle OpenMP threads must not spin.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from api_pages import write_api_pages  # noqa: E402
from offline_intersphinx import intersphinx_mapping as _offline_mapping  # noqa: E402

import skmsc  # noqa: E402

project = "skmsc"
author = "the skmsc developers"
copyright = f"{time.strftime('%Y')}, {author}"
release = version = skmsc.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
    "matplotlib.sphinxext.plot_directive",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
# performance_tables_*.md are data files written by benchmarks/speed.py for
# performance.md, which quotes them; they are not pages of their own.
exclude_patterns = [
    "_build", "_ext", "Thumbs.db", ".DS_Store", "**/README.md", "**.ipynb",
    "performance_tables_*.md",
]

# ---------------------------------------------------------------- API reference
# Listed explicitly: autosummary's default (all known documents) misses a module page
# that is new since the last build, as the saved environment does not list it yet.
autosummary_generate = [f"api/{module}.rst" for module in write_api_pages(DOCS)]
autodoc_default_options = {"members": False}
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = True
numpydoc_xref_aliases = {
    "ndarray": "numpy.ndarray",
    "array-like": ":term:`array-like <array_like>`",
    "RandomState": "numpy.random.RandomState",
    "Generator": "numpy.random.Generator",
    "PathLike": "os.PathLike",
    "Module": "torch.nn.Module",
    "Tensor": "torch.Tensor",
    "bool": "bool",  # numpydoc's default points at a label our offline inventory lacks
    "iterable": ":term:`python:iterable`",
    # numpydoc's default points at python's glossary, absent from our offline inventory
    "sequence": "collections.abc.Sequence",
}
numpydoc_xref_ignore = {
    "of", "or", "shape", "default", "optional", "n", "d", "H", "W", "N", "3", "int64",
    "uint8", "float32", "float64", "path", "None", "Ignored", "object", "n_samples",
    "n_features", "n_features_out", "n_neighbors", "height", "width", "k", "str)",
}
default_role = "py:obj"

# ---------------------------------------------------------------- intersphinx, offline
# Sphinx would download each project's objects.inv; these docs build without network
# access from inventories written by docs/_ext/offline_intersphinx.py (see its docstring).
intersphinx_mapping = _offline_mapping(DOCS / "_build" / "intersphinx")
intersphinx_timeout = 1

# ---------------------------------------------------------------- gallery
# Executes every examples/plot_*.py; other scripts there (quickstart.py) are not part of it.
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"(^|/)(?!plot_)[^/]*\.py$",
    "doc_module": ("skmsc",),
    "backreferences_dir": "api/generated/backreferences",
    "reference_url": {"skmsc": None},
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "show_memory": False,
    "plot_gallery": "True",
}

# ---------------------------------------------------------------- figures in the guide
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]
plot_rcparams = {"savefig.bbox": "tight"}

# ---------------------------------------------------------------- pages others generate
# docs/benchmarks.md and docs/performance.md are written by the benchmark scripts from
# their result files. The guide lists each one only if it exists (a toctree entry for a
# missing page would be a warning, hence an error).
OPTIONAL_PAGES = {"benchmarks": "Benchmarks", "performance": "Performance"}
myst_heading_anchors = 3


def _add_optional_pages(app, docname, source):
    if docname != "guide/index":
        return
    present = [page for page in OPTIONAL_PAGES if (DOCS / f"{page}.md").is_file()]
    if present:
        entries = "".join(f"   ../{page}\n" for page in present)
        source[0] += f"\n.. toctree::\n   :maxdepth: 1\n   :caption: Measured results\n\n{entries}"


def setup(app):
    app.connect("source-read", _add_optional_pages)


# ---------------------------------------------------------------- HTML
html_theme = "pydata_sphinx_theme"
html_title = f"skmsc {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "guide/**": ["sidebar-nav-bs"]}
