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


# The public API of release 0.1.0; the package's reorganisation into stage folders kept it whole.
PUBLIC_0_1_0 = [
    "AttrPromptBuilder", "AttrPromptConfig", "AttrPromptError", "PRESET_NAMES", "Recipe", "__version__",
    "compare_folders", "deduplicate", "discover_recipe", "generate_folder", "load_preset", "load_recipe",
    "parse_recipe", "publish", "register", "train_classifier", "write_card",
]  # fmt: skip


def test_the_0_1_0_public_api_is_still_there():
    assert set(PUBLIC_0_1_0) <= set(attrprompt_builder.__all__)
    from attrprompt_builder.builder import AttrPromptBuilder  # the loading script's import path

    assert AttrPromptBuilder is attrprompt_builder.AttrPromptBuilder


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
    importlib.import_module("attrprompt_builder.dataset.deduplicate")
    importlib.import_module("attrprompt_builder.quality_audit")
    assert callable(attrprompt_builder.publish) and callable(attrprompt_builder.deduplicate)
    assert callable(attrprompt_builder.audit)


def test_audit_is_public():
    from attrprompt_builder.quality_audit import audit

    assert "audit" in attrprompt_builder.__all__ and attrprompt_builder.audit is audit


def test_every_package_folder_is_listed_for_installation():
    # setup.cfg lists packages by name: a new folder left out works in a checkout and is missing when installed.
    import configparser
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    config = configparser.ConfigParser()
    config.read(root / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    folders = {".".join(init.parent.relative_to(root).parts) for init in (root / "attrprompt_builder").rglob("__init__.py")}
    assert folders - listed == set()
