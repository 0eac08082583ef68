"""Step 2: a value found once in a call (or a session) is removed wherever else it appears there.

Detectors find a name in one message and miss it two turns later, find the first name of a passenger list and not
the second, and never see the name inside `noah_hernandez_1234`. So what was found anywhere in a scope (by a
detector, or by the key a JSON value is under) is searched for in all of its texts: each value itself, each word of
a name, and every identifier that has such a word as one of its parts, which is replaced whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import regex

if TYPE_CHECKING:
    from pipeline.scrub import Finding

RECOGNIZER = "Propagation"
ID_TYPE = "USER_ID"  # what an identifier made from a name becomes: `<USER_ID_1>` for noah_hernandez_1234

# Words of a found name that are not its identifying part.
_NOT_A_NAME_WORD = frozenset({
    "mr", "mrs", "ms", "miss", "dr", "prof", "sir", "madam", "mx", "jr", "sr", "ii", "iii", "van", "von", "de", "da",
    "del", "della", "di", "du", "le", "la", "ten", "ter", "der", "den", "bin", "al", "dos", "and", "the", "of",
})
# Names that are also everyday words are sought only as they were found (capitalised), so that finding "Will Brown"
# does not turn "we will" into "we <PERSON_2>".
_EVERYDAY_WORDS = frozenset({
    "will", "may", "june", "april", "august", "grant", "mark", "bill", "rose", "hope", "faith", "joy", "grace",
    "dawn", "summer", "rich", "frank", "art", "don", "guy", "pat", "chase", "drew", "lance", "rob", "jack", "miles",
    "max", "ray", "sky", "amber", "ruby", "pearl", "violet", "iris", "jade", "ivy", "olive", "holly", "penny",
    "sandy", "crystal", "autumn", "brook", "major", "king", "prince", "earl", "duke", "young", "long", "white",
    "black", "brown", "green", "gray", "grey", "park", "hall", "wall", "hill", "wood", "stone", "fox", "bird", "cook",
    "baker", "hunter", "fisher", "carter", "mason", "porter", "turner", "walker", "price", "bell", "rice", "bush",
    "lane", "field", "ford", "west", "north", "south", "east", "love", "best", "good", "day", "case", "page", "post",
    "cash", "gold", "silver", "nice", "sharp", "strong", "short", "small", "little", "new", "say", "law", "cross",
    "key", "street", "rush", "win", "gay", "noble", "lord", "reed", "moss", "marsh",
})
_FIGURES = regex.compile(r"[\d\s.,:/-]+")
_NAME_WORD = regex.compile(r"\p{L}[\p{L}'’-]*\p{L}")
# An identifier: letters and digits joined by `_`, `.` or `-`, or letters and digits mixed (mhernandez1234).
_TOKEN = regex.compile(r"(?<![\w.+-])[\p{L}\d][\w.+-]*[\p{L}\d](?![\w+-]|\.\w)")
_PART = regex.compile(r"\p{Lu}?\p{Ll}+|\p{Lu}+(?!\p{Ll})")


def _house_number(value: str) -> bool:
    """Figures of fewer than five digits: a house number found apart from its street, which says nothing alone and,
    sought elsewhere, takes out amounts, counts and times ("12" of "$12", "12:30"). Five digits may be a postal code."""
    return _FIGURES.fullmatch(value) is not None and sum(c.isdigit() for c in value) < 5


def name_words(name: str) -> list[str]:
    """The identifying words of a name: "Dr. Noah van Hernandez" -> ["Noah", "Hernandez"]."""
    return [word for word in _NAME_WORD.findall(name) if word.lower() not in _NOT_A_NAME_WORD]


class Known:
    """The values found in one scope, and where else in its texts they are."""

    def __init__(self) -> None:
        self._any_case: dict[str, str] = {}  # a value, lower-cased -> its type
        self._as_found: dict[str, str] = {}  # a value sought only as it was found -> its type
        self._name_words: set[str] = set()  # the words of names, lower-cased, for the parts of identifiers
        self._pattern: regex.Pattern | None = None

    def add(self, kind: str, value: str) -> None:
        value = value.strip()
        if len(value) < 2 or (kind == "STREET_ADDRESS" and _house_number(value)):
            return
        self._remember(kind, value)
        if kind == "PERSON":
            for word in name_words(value):
                self._remember(kind, word)
                if word.lower() not in _EVERYDAY_WORDS:
                    self._name_words.add(word.lower())
        self._pattern = None

    def _remember(self, kind: str, value: str) -> None:
        lower = value.lower()
        if " " not in value and (lower in _EVERYDAY_WORDS or len(value) <= 3):
            self._as_found.setdefault(value, kind)
        else:
            self._any_case.setdefault(lower, kind)

    def __bool__(self) -> bool:
        return bool(self._any_case or self._as_found)

    def findings(self, text: str, found: list[Finding], identifiers: bool = True,
                 within: list[tuple[int, int]] | None = None) -> list[Finding]:
        """`found` (the findings in `text`) and every other place in `text` (or in its spans `within`) a known value
        is, in reading order. With `identifiers`, one made from a name word is replaced whole, over whatever was found
        inside it."""
        if not self or not text:
            return found
        inside = lambda m: within is None or any(s <= m.start() and m.end() <= e for s, e in within)  # noqa: E731
        extra = [
            (self._any_case.get(m.group().lower()) or self._as_found[m.group()], m.start(), m.end(), 1.0, RECOGNIZER)
            for m in self._compiled().finditer(text) if inside(m)
        ]
        ids = [
            (self._any_case.get(m.group().lower(), ID_TYPE), m.start(), m.end(), 1.0, RECOGNIZER)
            for m in _TOKEN.finditer(text) if identifiers and inside(m) and self._is_made_of_a_name(m.group())
        ]
        inside_an_id = [f for f in found + extra if any(s <= f[1] and f[2] <= e for _, s, e, _, _ in ids)]
        return _without_overlaps([f for f in found + extra if f not in inside_an_id] + ids)

    def _compiled(self) -> regex.Pattern:
        if self._pattern is None:
            by_length = lambda values: sorted(values, key=len, reverse=True)  # noqa: E731
            alternatives = [f"(?i:{regex.escape(v)})" for v in by_length(self._any_case)]
            alternatives += [regex.escape(v) for v in by_length(self._as_found)]
            self._pattern = regex.compile(rf"(?<!\w)(?:{'|'.join(alternatives)})(?!\w)")
        return self._pattern

    def _is_made_of_a_name(self, token: str) -> bool:
        """noah_hernandez_1234, noah.hernandez, hernandez-noah, noah42: a name word and a digit, or two name words."""
        if not regex.search(r"[_.\-\d]", token):
            return False
        names = sum(part.lower() in self._name_words for part in _PART.findall(token))
        return names >= 2 or (names == 1 and any(c.isdigit() for c in token))


def _without_overlaps(findings: list[Finding]) -> list[Finding]:
    """Of findings that overlap, the longest (then the first) stays: placeholders must not nest."""
    kept: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (-(f[2] - f[1]), f[1])):
        if not any(finding[1] < k[2] and k[1] < finding[2] for k in kept):
            kept.append(finding)
    return sorted(kept, key=lambda f: f[1])
