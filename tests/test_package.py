"""The public surface: sorted ``__all__``, every name importable, nothing that shadows a submodule."""

from __future__ import annotations

import importlib
import pkgutil
import types

import attrprompt_builder


def test_all_is_sorted_and_every_name_resolves():
    names = attrprompt_builder.__all__
    assert names == sorted(names)
    for name in names:
        assert not isinstance(getattr(attrprompt_builder, name), types.ModuleType), name


def test_every_module_has_a_sorted_all():
    for info in pkgutil.walk_packages(attrprompt_builder.__path__, "attrprompt_builder."):
        if info.name.endswith(".regenerate"):
            continue
        module = importlib.import_module(info.name)
        exported = getattr(module, "__all__", None)
        if exported is None:
            continue
        assert list(exported) == sorted(exported), info.name
        for name in exported:
            assert hasattr(module, name), f"{info.name}.{name}"


def test_lazy_exports_still_work_after_their_modules_are_imported():
    importlib.import_module("attrprompt_builder.dataset.publish")
    importlib.import_module("attrprompt_builder.filters.dedup.filter")
    assert callable(attrprompt_builder.publish) and callable(attrprompt_builder.deduplicate)
