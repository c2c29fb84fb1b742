"""registry: register/get, did-you-mean errors, lazy module import, listing."""

import pytest

from duplexalign.errors import ConfigError
from duplexalign.registry import Registry, all_registries


def test_register_get_and_names():
    r = Registry("test widget")
    r.register("alpha")(len)
    r.add("beta", str)
    assert r.get("alpha") is len and r.get("beta") is str
    assert r.names() == ["alpha", "beta"] and "alpha" in r
    assert all_registries()["test widget"] is r


def test_unknown_name_suggests_near_misses():
    r = Registry("test loss")
    r.add("dpo_ln", 1)
    r.add("dpo", 2)
    r.add("simpo", 3)
    with pytest.raises(ConfigError) as e:
        r.get("dpo-ln")
    assert "did you mean 'dpo_ln'" in str(e.value)
    assert "known: dpo, dpo_ln, simpo" in str(e.value)
    with pytest.raises(ConfigError) as e:
        r.get("zzz")
    assert "did you mean" not in str(e.value)


def test_same_name_twice_is_an_error():
    r = Registry("test dup")
    r.add("a", len)
    r.add("a", len)  # re-registering the same object (module re-import) is fine
    with pytest.raises(ValueError, match="registered twice"):
        r.add("a", str)


def test_lazy_modules_are_imported_on_first_lookup():
    import sys

    r = Registry("test lazy", modules=("json",))
    assert r.names() == [] and "json" in sys.modules


def test_a_listed_module_that_does_not_exist_is_an_error():
    r = Registry("test missing", modules=("json", "duplexalign.no_such_module_yet"))
    with pytest.raises(ImportError, match="test missing registry lists module "
                                          "'duplexalign.no_such_module_yet'"):
        r.names()


def test_every_listed_module_of_the_package_exists():
    from duplexalign.cli.ls import load_registries

    for kind, reg in load_registries().items():
        if not kind.startswith("test "):  # the registries these tests make
            assert reg.names(), kind


def test_missing_dependency_inside_a_module_is_not_hidden(tmp_path, monkeypatch):
    (tmp_path / "dup_reg_broken.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    r = Registry("test broken", modules=("dup_reg_broken",))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        r.names()
