"""Helpers for tests that damage or forge saved models (not a test module)."""

import hashlib
import json

from safetensors.numpy import load_file, save_file

import skmsc.persistence
from skmsc.persistence import JSON_NAME, TENSORS_NAME


def rebind(folder, edit=None):
    """Rewrite a saved folder so its files agree again, as a careful forger would.

    ``edit(document, tensors)`` changes the parsed JSON document and the dict of arrays
    in place; both files are then written with matching hashes, so only the checks of
    the contents themselves stand between the forgery and a loaded model.
    """
    document = json.loads((folder / JSON_NAME).read_text())
    tensors = load_file(str(folder / TENSORS_NAME))
    if edit is not None:
        edit(document, tensors)
    # Format 1 (before the binding) had no document hash: these tests then run on it too.
    hashing = getattr(skmsc.persistence, "document_sha256", None)
    binding = None if hashing is None else {"skmsc_document_sha256": hashing(document)}
    save_file(tensors, str(folder / TENSORS_NAME), metadata=binding)
    document["tensors_sha256"] = hashlib.sha256((folder / TENSORS_NAME).read_bytes()).hexdigest()
    (folder / JSON_NAME).write_text(json.dumps(document))


def record_tensor_hash(folder):
    """Make the JSON record the SHA-256 of whatever the tensor file now holds."""
    document = json.loads((folder / JSON_NAME).read_text())
    document["tensors_sha256"] = hashlib.sha256((folder / TENSORS_NAME).read_bytes()).hexdigest()
    (folder / JSON_NAME).write_text(json.dumps(document))


def write_document(folder, document):
    """Replace the saved JSON document by ``document`` and bind the files to it again."""

    def edit(saved, tensors):
        saved.clear()
        saved.update(json.loads(json.dumps(document)))

    rebind(folder, edit)
