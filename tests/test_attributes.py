import pytest

from fadercli.attributes import AttributeSet, parse_assignment, parse_assignments
from fadercli.errors import UsageError

ATTRS = AttributeSet.binary(["Eyeglasses", "Male", "Smiling"])


def test_binary_values_become_pairs_and_categories_one_hot():
    assert ATTRS.channels([0, 1, 1.5]) == [1, 0, 0, 1, -0.5, 1.5]
    mixed = AttributeSet.from_pairs([("Smiling", 2), ("Hair", 3)])
    assert mixed.n_channels == 5
    assert mixed.offsets() == [0, 2]
    assert mixed.channels([0.25, 2]) == [0.75, 0.25, 0, 0, 1]
    with pytest.raises(UsageError, match="category index"):
        mixed.channels([0, 3])


def test_names_are_case_insensitive():
    assert parse_assignments(["eyeglasses=1.5", "MALE=-0.5"], ATTRS) == {"Eyeglasses": 1.5, "Male": -0.5}
    assert ATTRS.index("smiling") == 2


def test_unknown_attribute_lists_the_model_attributes_and_the_closest_match():
    with pytest.raises(UsageError) as e:
        parse_assignments(["Eyeglases=1"], ATTRS)
    message = str(e.value)
    assert "Eyeglasses, Male, Smiling" in message
    assert "Did you mean Eyeglasses?" in message
    assert "\n" not in message
    with pytest.raises(UsageError) as e:
        ATTRS.resolve("Hat")
    assert "Did you mean" not in str(e.value)


@pytest.mark.parametrize("text", ["Male=abc", "Male=nan", "Male=inf", "Male=-Infinity", "Male", "=1", "Male="])
def test_bad_assignments_are_refused(text):
    with pytest.raises(UsageError):
        parse_assignment(text)


def test_numbers_in_any_float_syntax():
    assert parse_assignment(" Male = +1e-1 ") == ("Male", 0.1)


def test_setting_an_attribute_twice_is_an_error():
    with pytest.raises(UsageError, match="twice"):
        parse_assignments(["male=1", "Male=0"], ATTRS)


def test_duplicate_or_empty_sets_are_refused():
    with pytest.raises(ValueError):
        AttributeSet.binary(["Male", "male"])
    with pytest.raises(ValueError):
        AttributeSet.binary([])
