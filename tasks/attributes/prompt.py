"""Composite-prompt parser for the attribute task: text → a neutral list of weighted, optionally negated, optionally
regional attribute terms. The sampling algebra (how terms combine into a guided prediction) lives in the backbone.

Grammar (whitespace is free between tokens)::

    prompt  := ""  |  term ("&" term)*
    term    := [weight "*"] ["~"] attribute ["@" region]
    weight  := float, e.g. 2, 0.5, -1, 1e-3, +.5
    region  := name (eyes, mouth, ... from REGIONS)  |  "(" float "," float "," float "," float ")"   (x0, y0, x1, y1)

Examples::

    parse_prompt("glasses & 2*smile & ~hat")
    parse_prompt("0.5*~beard @chin & sunglasses@(0.1, 0.2, 0.9, 0.7)")
    parse_prompt("")                       # → [] (unconditional)
    parse_region_override("glasses=0.1,0.2,0.5,0.6")   # → ("glasses", (0.1, 0.2, 0.5, 0.6))
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from tasks.attributes.faces import ATTRIBUTES, REGIONS

Box = tuple[float, float, float, float]

_FLOAT = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_FLOAT_RE = re.compile(_FLOAT, re.ASCII)  # ASCII digits only (\d would accept any Unicode digit)
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WS_RE = re.compile(r"\s*", re.ASCII)


@dataclass(frozen=True)
class ParsedTerm:
    """One term of a composite prompt.

    attribute: attribute name; weight: guidance weight (1.0 when not written); negated: written with "~";
    region: a region name, an (x0, y0, x1, y1) box in [0, 1], or None for the whole image;
    span: [start, end) character offsets of the term in the prompt (not compared in ==, so re-parsed terms are equal).
    """

    attribute: str
    weight: float
    negated: bool
    region: str | Box | None
    span: tuple[int, int] = field(default=(0, 0), compare=False)


class PromptError(ValueError):
    """A prompt that does not parse. `position` is the 0-based character offset of the problem."""

    def __init__(self, message: str, text: str, position: int):
        self.message = message
        self.text = text
        self.position = position
        lines = [message, "  " + text.replace("\n", " ").replace("\t", " "), "  " + " " * position + "^"]
        super().__init__("\n".join(lines))


def _suggest(name: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(valid), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _check_box(box: Sequence[float]) -> str | None:
    """None if valid, else what is wrong."""
    x0, y0, x1, y1 = box
    if not all(math.isfinite(v) for v in box):
        return "box values must be finite"
    if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
        return f"a region box needs 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, got {tuple(box)}"
    return None


class _Parser:
    def __init__(self, text: str, attributes: Sequence[str], regions: Mapping[str, Box]):
        self.text, self.pos = text, 0
        self.attributes, self.regions = tuple(attributes), regions

    def error(self, message: str, position: int | None = None) -> PromptError:
        return PromptError(message, self.text, self.pos if position is None else position)

    def skip_ws(self) -> None:
        self.pos = _WS_RE.match(self.text, self.pos).end()

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str, what: str) -> None:
        self.skip_ws()
        if self.peek() != char:
            found = repr(self.peek()) if self.peek() else "end of prompt"
            raise self.error(f"expected {char!r} {what}, found {found}")
        self.pos += 1

    def number(self, what: str) -> float:
        self.skip_ws()
        m = _FLOAT_RE.match(self.text, self.pos)
        if not m:
            raise self.error(f"expected a number for {what}")
        value = float(m.group())
        if not math.isfinite(value):
            raise self.error(f"{what} must be a finite number, got {m.group()!r}")
        self.pos = m.end()
        return value

    def term(self) -> ParsedTerm:
        self.skip_ws()
        start = self.pos
        weight = 1.0
        m = _FLOAT_RE.match(self.text, self.pos)
        if m:
            weight = float(m.group())
            if not math.isfinite(weight):
                raise self.error(f"weight must be a finite number, got {m.group()!r}")
            self.pos = m.end()
            self.expect("*", "between a weight and its attribute (e.g. 2*glasses)")
            self.skip_ws()
        negated = False
        if self.peek() == "~":
            negated = True
            self.pos += 1
            self.skip_ws()
        m = _NAME_RE.match(self.text, self.pos)
        if not m:
            found = repr(self.peek()) if self.peek() else "end of prompt"
            raise self.error(f"expected an attribute name, found {found}; valid attributes: "
                             f"{', '.join(self.attributes)}")
        name = m.group()
        if name not in self.attributes:
            raise self.error(f"unknown attribute {name!r}{_suggest(name, self.attributes)} "
                             f"valid attributes: {', '.join(self.attributes)}")
        self.pos = m.end()
        end = self.pos
        region: str | Box | None = None
        self.skip_ws()
        if self.peek() == "@":
            self.pos += 1
            region = self.region()
            end = self.pos
        return ParsedTerm(name, weight, negated, region, (start, end))

    def region(self) -> str | Box:
        self.skip_ws()
        if self.peek() == "(":
            start = self.pos
            self.pos += 1
            values = []
            for i in range(4):
                if i:
                    self.expect(",", "between box values (x0, y0, x1, y1)")
                values.append(self.number(f"box value {'x0 y0 x1 y1'.split()[i]}"))
            self.expect(")", "to close the box (x0, y0, x1, y1)")
            problem = _check_box(values)
            if problem:
                raise self.error(problem, start)
            return tuple(values)  # type: ignore[return-value]
        m = _NAME_RE.match(self.text, self.pos)
        if not m:
            found = repr(self.peek()) if self.peek() else "end of prompt"
            raise self.error(f"expected a region name or a box (x0, y0, x1, y1) after '@', found {found}; "
                             f"valid regions: {', '.join(self.regions)}")
        name = m.group()
        if name not in self.regions:
            raise self.error(f"unknown region {name!r}{_suggest(name, self.regions)} "
                             f"valid regions: {', '.join(self.regions)}")
        self.pos = m.end()
        return name

    def prompt(self) -> list[ParsedTerm]:
        self.skip_ws()
        if self.pos == len(self.text):
            return []
        terms: list[ParsedTerm] = []
        seen: dict[str, int] = {}
        while True:
            term = self.term()
            if term.attribute in seen:
                raise self.error(f"attribute {term.attribute!r} appears twice (first at {seen[term.attribute]}); "
                                 "combine its weights into one term", term.span[0])
            seen[term.attribute] = term.span[0]
            terms.append(term)
            self.skip_ws()
            if self.pos == len(self.text):
                return terms
            if self.peek() != "&":
                raise self.error(f"expected '&' between terms or end of prompt, found {self.peek()!r}")
            self.pos += 1


def parse_prompt(
    text: str, attributes: Sequence[str] = ATTRIBUTES, regions: Mapping[str, Box] = REGIONS
) -> list[ParsedTerm]:
    """Parse a composite prompt (grammar in the module docstring). Empty/whitespace → [] (unconditional).

    Raises PromptError (a ValueError with .position) on anything else that does not parse.
    """
    if not isinstance(text, str):
        raise TypeError(f"prompt must be a str, got {type(text).__name__}")
    return _Parser(text, attributes, regions).prompt()


def _format_float(x: float) -> str:
    return repr(float(x))  # shortest string that round-trips exactly


def format_term(term: ParsedTerm) -> str:
    """Canonical text of one term (parse_prompt(format_term(t)) == [t])."""
    out = "" if term.weight == 1.0 else f"{_format_float(term.weight)}*"
    out += ("~" if term.negated else "") + term.attribute
    if isinstance(term.region, str):
        out += f"@{term.region}"
    elif term.region is not None:
        out += "@(" + ",".join(_format_float(v) for v in term.region) + ")"
    return out


def format_prompt(terms: Iterable[ParsedTerm]) -> str:
    """Canonical text of a parsed prompt: terms joined by ' & '."""
    return " & ".join(format_term(t) for t in terms)


def parse_region_override(text: str, attributes: Sequence[str] = ATTRIBUTES) -> tuple[str, Box]:
    """'glasses=0.1,0.2,0.5,0.6' → ("glasses", (0.1, 0.2, 0.5, 0.6)), e.g. from a `--region` command-line option."""
    if "=" not in text:
        raise PromptError("a region override needs the form attribute=x0,y0,x1,y1", text, len(text))
    name_part, box_part = text.split("=", 1)
    name = name_part.strip()
    name_at = len(name_part) - len(name_part.lstrip())
    if name not in attributes:
        raise PromptError(f"unknown attribute {name!r}{_suggest(name, attributes)} "
                          f"valid attributes: {', '.join(attributes)}", text, name_at)
    offset = len(name_part) + 1
    fields = box_part.split(",")
    if len(fields) != 4:
        raise PromptError(f"a region override needs 4 comma-separated numbers x0,y0,x1,y1, got {len(fields)}",
                          text, offset)
    values = []
    for f in fields:
        stripped = f.strip()
        at = offset + len(f) - len(f.lstrip())
        if not re.fullmatch(_FLOAT, stripped, re.ASCII):
            raise PromptError(f"expected a number, found {stripped!r}", text, at)
        values.append(float(stripped))
        offset += len(f) + 1
    problem = _check_box(values)
    if problem:
        raise PromptError(problem, text, len(name_part) + 1)
    return name, tuple(values)  # type: ignore[return-value]


# ---- free text inside a composite prompt -----------------------------------------------------------------------------
@dataclass(frozen=True)
class FreeText:
    """A chunk of a prompt in plain words ("a smiling man with round glasses"), read by the CLIP later: its own
    weight / "~" / "@region" are written around it as for an attribute ("2*~wearing a hat@top")."""

    text: str
    weight: float = 1.0
    negated: bool = False
    region: str | Box | None = None
    span: tuple[int, int] = field(default=(0, 0), compare=False)


_PREFIX_RE = re.compile(r"\s*(?:(" + _FLOAT + r")\s*\*)?\s*(~)?", re.ASCII)
_SUFFIX_RE = re.compile(r"@\s*([A-Za-z_][A-Za-z0-9_]*|\([^()]*\))\s*$")
_WORDY_RE = re.compile(r"[A-Za-z][^\s&]*\s+[^\s&]*[A-Za-z]|[A-Za-z][,.;:!?'\"-]|[,.;:!?'\"-][A-Za-z]")


def _chunks(text: str) -> list[tuple[int, int]]:
    """[start, end) of the parts of `text` between top-level '&' (an '&' inside a box's parentheses does not split)."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "&" and depth <= 0:
            out.append((start, i))
            start = i + 1
    out.append((start, len(text)))
    return out


def looks_like_free_text(chunk: str, attributes: Sequence[str] = ATTRIBUTES) -> bool:
    """True for words rather than one attribute name: two words with a space between, or punctuation inside a word
    (after taking off a weight, "~" and an "@region"), unless every word is an attribute name ("glasses beard" is a
    grammar slip: a missing '&')."""
    body = chunk[_PREFIX_RE.match(chunk).end():]
    m = _SUFFIX_RE.search(body)
    body = body[:m.start()] if m else body
    words = re.findall(r"[A-Za-z_]+", body)
    if words and all(w in attributes for w in words):
        return False
    return bool(_WORDY_RE.search(body.strip()))


def parse_mixed(text: str, attributes: Sequence[str] = ATTRIBUTES, regions: Mapping[str, Box] = REGIONS
                ) -> list["ParsedTerm | FreeText"]:
    """Like parse_prompt, but a part between '&' that is plain words becomes a FreeText (for the CLIP):
    "a smiling man & ~hat & wearing sunglasses@eyes" → [FreeText("a smiling man"), ~hat, FreeText(..., region="eyes")].
    A prompt in the attribute grammar alone parses exactly as parse_prompt does (same terms, same errors); a part that
    is neither (e.g. one misspelt name) raises parse_prompt's error for that part, at its position in `text`."""
    try:
        return parse_prompt(text, attributes, regions)
    except PromptError as first:
        parts = _chunks(text)
        if not any(looks_like_free_text(text[a:b], attributes) for a, b in parts):
            raise first
    out: list[ParsedTerm | FreeText] = []
    for a, b in parts:
        chunk = text[a:b]
        if not chunk.strip():
            raise PromptError("empty part between '&'", text, a)
        if not looks_like_free_text(chunk, attributes):
            try:
                (term,) = parse_prompt(chunk, attributes, regions)
            except PromptError as e:
                raise PromptError(e.message, text, a + e.position) from None
            out.append(replace_span(term, (a + term.span[0], a + term.span[1])))
            continue
        m = _PREFIX_RE.match(chunk)
        weight = float(m.group(1)) if m.group(1) else 1.0
        if not math.isfinite(weight):
            raise PromptError(f"weight must be a finite number, got {m.group(1)!r}", text, a)
        negated = bool(m.group(2))
        body_start = m.end()
        body = chunk[body_start:]
        region: str | Box | None = None
        sm = _SUFFIX_RE.search(body)
        if sm:
            p = _Parser(body[sm.start() + 1:], attributes, regions)
            try:
                region = p.region()
            except PromptError as e:
                raise PromptError(e.message, text, a + body_start + sm.start() + 1 + e.position) from None
            body = body[:sm.start()]
        words = body.strip()
        out.append(FreeText(words, weight, negated, region, (a, b)))
    return out


def replace_span(term: ParsedTerm, span: tuple[int, int]) -> ParsedTerm:
    return ParsedTerm(term.attribute, term.weight, term.negated, term.region, span)
