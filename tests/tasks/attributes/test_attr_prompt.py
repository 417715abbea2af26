"""Composite-prompt parser: grammar cases, error positions and messages, hypothesis fuzz and round-trip."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.attributes.faces import ATTRIBUTES, REGIONS
from tasks.attributes.prompt import (
    ParsedTerm,
    PromptError,
    format_prompt,
    format_term,
    parse_prompt,
    parse_region_override,
)


def test_empty_prompt_is_unconditional():
    assert parse_prompt("") == []
    assert parse_prompt("   \t\n ") == []


def test_single_and_composite_terms():
    assert parse_prompt("glasses") == [ParsedTerm("glasses", 1.0, False, None, (0, 7))]
    terms = parse_prompt("glasses & 2*smile & ~hat")
    assert [(t.attribute, t.weight, t.negated, t.region) for t in terms] == [
        ("glasses", 1.0, False, None), ("smile", 2.0, False, None), ("hat", 1.0, True, None)]
    assert [t.span for t in terms] == [(0, 7), (10, 17), (20, 24)]


def test_weights_negation_regions_and_whitespace():
    t = parse_prompt(" 0.5 * ~ hat @ top ")[0]
    assert (t.attribute, t.weight, t.negated, t.region, t.span) == ("hat", 0.5, True, "top", (1, 18))
    assert parse_prompt("-1*hat")[0].weight == -1.0
    assert parse_prompt("+.5*beard")[0].weight == 0.5
    assert parse_prompt("1e-3*beard")[0].weight == 0.001
    t = parse_prompt("sunglasses@( 0.1 ,0.2, 0.5,0.6 )")[0]
    assert t.region == (0.1, 0.2, 0.5, 0.6)
    assert parse_prompt("glasses@eyes&smile@mouth")[1].region == "mouth"


def test_region_box_is_validated_where_it_starts():
    with pytest.raises(PromptError, match="x0 < x1") as e:
        parse_prompt("hat@(0.5,0.1,0.2,0.9)")
    assert e.value.position == 4


@pytest.mark.parametrize(
    "text, position, fragment",
    [
        ("glases", 0, "did you mean 'glasses'"),
        ("hat & smil", 6, "did you mean 'smile'"),
        ("hat@eys", 4, "did you mean 'eyes'"),
        ("hat@", 4, "valid regions"),
        ("hat &", 5, "expected an attribute name"),
        ("& hat", 0, "expected an attribute name"),
        ("2 hat", 2, "expected '*'"),
        ("2*", 2, "end of prompt"),
        ("hat smile", 4, "expected '&'"),
        ("hat & 2*hat", 6, "appears twice"),
        ("hat@(0.1,0.2,0.3)", 16, "expected ','"),
        ("hat@(0.1,0.2,0.3,0.4", 20, "expected ')'"),
        ("hat@(0.1,x,0.3,0.4)", 9, "box value y0"),
        ("1e999*hat", 0, "finite"),
        ("~~hat", 1, "expected an attribute name"),
    ],
)
def test_errors_have_positions_and_clear_messages(text, position, fragment):
    with pytest.raises(PromptError) as e:
        parse_prompt(text)
    assert e.value.position == position
    assert fragment in str(e.value)
    assert isinstance(e.value, ValueError)
    # The message shows the prompt and a caret under the position.
    lines = str(e.value).split("\n")
    assert lines[-2] == "  " + text and lines[-1] == "  " + " " * position + "^"


def test_unknown_attribute_lists_valid_names():
    with pytest.raises(PromptError) as e:
        parse_prompt("wings")
    assert all(a in str(e.value) for a in ATTRIBUTES)


def test_custom_vocabulary():
    terms = parse_prompt("Smiling & ~Eyeglasses@left", attributes=["Smiling", "Eyeglasses"],
                         regions={"left": (0.0, 0.0, 0.5, 1.0)})
    assert [t.attribute for t in terms] == ["Smiling", "Eyeglasses"] and terms[1].region == "left"


def test_region_override():
    assert parse_region_override("glasses=0.1,0.2,0.5,0.6") == ("glasses", (0.1, 0.2, 0.5, 0.6))
    assert parse_region_override(" hat = 0, 0, 1, 0.5") == ("hat", (0.0, 0.0, 1.0, 0.5))
    with pytest.raises(PromptError, match="did you mean 'glasses'") as e:
        parse_region_override("glases=0.1,0.2,0.5,0.6")
    assert e.value.position == 0
    with pytest.raises(PromptError, match="expected a number") as e:
        parse_region_override("hat=0.1,zz,0.5,0.6")
    assert e.value.position == 8
    with pytest.raises(PromptError, match="4 comma-separated"):
        parse_region_override("hat=0.1,0.2")
    with pytest.raises(PromptError, match="attribute=x0"):
        parse_region_override("hat")
    with pytest.raises(PromptError, match="x0 < x1"):
        parse_region_override("hat=0.6,0.2,0.5,0.9")


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("glasesht~&*@().,-+e0123456789 _\tmouy")) | st.characters(), max_size=40))
def test_fuzz_returns_list_or_prompt_error(text):
    try:
        out = parse_prompt(text)
    except PromptError as e:
        assert 0 <= e.position <= len(text)
    else:
        assert isinstance(out, list) and all(isinstance(t, ParsedTerm) for t in out)


_weight = st.one_of(st.just(1.0), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))
_box = st.tuples(st.floats(0, 0.49), st.floats(0, 0.49), st.floats(0.5, 1.0), st.floats(0.5, 1.0))
_region = st.one_of(st.none(), st.sampled_from(sorted(REGIONS)), _box)


@st.composite
def _terms(draw):
    names = draw(st.lists(st.sampled_from(ATTRIBUTES), unique=True, max_size=len(ATTRIBUTES)))
    return [ParsedTerm(n, draw(_weight), draw(st.booleans()), draw(_region)) for n in names]


@settings(max_examples=300, deadline=None)
@given(_terms())
def test_round_trip(terms):
    text = format_prompt(terms)
    parsed = parse_prompt(text)
    assert parsed == terms
    for t in parsed:  # spans point at the term's own text
        assert text[t.span[0]:t.span[1]] == format_term(t)
    assert parse_prompt(format_prompt(parsed)) == parsed


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("glasesht~&*@().,-+e0123456789 _\tmouy a")) | st.characters(), max_size=40))
def test_fuzz_mixed_prompts_return_terms_and_words_or_a_prompt_error(text):
    from tasks.attributes.prompt import FreeText, parse_mixed

    try:
        out = parse_mixed(text)
    except PromptError as e:
        assert 0 <= e.position <= len(text)
    else:
        assert all(isinstance(t, (ParsedTerm, FreeText)) for t in out)
        if not any(isinstance(t, FreeText) for t in out):
            assert out == parse_prompt(text)  # the grammar alone parses exactly as before
