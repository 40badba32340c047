"""Make ``load_dataset("attrprompt", ...)`` find our builder on datasets 5.x.

datasets 5 has neither loading scripts nor a plugin hook: ``dataset_module_factory`` maps a path to
a packaged module, a local folder or a Hub repo. We wrap it so our name resolves to our builder
module *before* any of those lookups, which is what makes it work from any working directory, even
one holding data files or a folder called ``attrprompt``. (Adding the name to
``_PACKAGED_DATASETS_MODULES`` is not enough: datasets then insists on data files and scans the
working directory for them.)

The wrapper relies on two internals; ``register`` checks them and fails loudly if datasets changes.
"""

from __future__ import annotations

import functools
import hashlib

import datasets
import datasets.inspect
import datasets.load

from attrprompt_builder.errors import AttrPromptError
from attrprompt_builder.version import __version__

__all__ = ["DATASET_NAME", "register"]

DATASET_NAME = "attrprompt"
BUILDER_MODULE = "attrprompt_builder.dataset.builder"
_MARKER = "_attrprompt_names"
# Modules that imported dataset_module_factory by name and so hold their own reference to it.
_PATCHED_MODULES = (datasets.load, datasets.inspect)


def _module_hash() -> str:
    # Part of the cache path: a new package version never reuses datasets built by an older one.
    return hashlib.sha256(f"attrprompt-builder=={__version__}".encode()).hexdigest()[:16]


def _check_internals() -> None:
    missing = [m.__name__ for m in _PATCHED_MODULES if not callable(getattr(m, "dataset_module_factory", None))]
    if missing or not hasattr(datasets.load, "DatasetModule"):
        raise AttrPromptError(
            f"datasets {datasets.__version__} changed its loading internals (dataset_module_factory/DatasetModule "
            f"missing in {', '.join(missing) or 'datasets.load'}); use AttrPromptBuilder directly or pin datasets>=5.2,<6"
        )


def register(name: str = DATASET_NAME) -> None:
    """Route ``load_dataset(name, ...)`` and ``load_dataset_builder(name, ...)`` to our builder. Idempotent."""
    _check_internals()
    for module in _PATCHED_MODULES:
        factory = module.dataset_module_factory
        names: set[str] | None = getattr(factory, _MARKER, None)
        if names is not None:
            names.add(name)
            continue
        module.dataset_module_factory = _wrap(factory, {name})


def _wrap(original, names: set[str]):
    @functools.wraps(original)
    def dataset_module_factory(path, *args, **kwargs):
        if isinstance(path, str) and path in names:
            return datasets.load.DatasetModule(BUILDER_MODULE, _module_hash(), {"dataset_name": path})
        return original(path, *args, **kwargs)

    setattr(dataset_module_factory, _MARKER, names)
    return dataset_module_factory
