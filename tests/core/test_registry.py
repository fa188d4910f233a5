import pytest

from firm_bench.core.errors import UnknownNameError
from firm_bench.core.registry import Registry


def test_register_get_and_order():
    reg = Registry("widget")

    @reg.register("b")
    def b():
        return "b"

    reg.add("a", 1)
    assert reg.names() == ["b", "a"]
    assert reg.get("b") is b and "a" in reg and len(reg) == 2


def test_unknown_name_lists_valid_names():
    reg = Registry("loss")
    reg.add("firm", 1)
    reg.add("ntxent", 2)
    with pytest.raises(UnknownNameError) as err:
        reg.get("frim")
    assert str(err.value) == "unknown loss 'frim'; valid: firm, ntxent"


def test_duplicate_registration_raises():
    reg = Registry("x")
    reg.add("a", 1)
    with pytest.raises(ValueError, match="registered twice"):
        reg.add("a", 2)
