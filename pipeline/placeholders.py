"""Placeholders for what step 2 finds: within a call (or a session) the n-th distinct value of a type becomes
`<TYPE_n>`, the same each time, through Presidio's anonymizer and an operator of its own."""

from __future__ import annotations

from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig, RecognizerResult
from presidio_anonymizer.operators import Operator, OperatorType

from pipeline.propagation import name_words
from pipeline.scrub import Finding


class Placeholders:
    def __init__(self):
        self._engine = AnonymizerEngine()
        self._engine.add_anonymizer(_Pseudonym)

    def replace(self, text: str, findings: list[Finding], mapping: dict) -> str:
        """`text` with each finding replaced by its placeholder; `mapping` (type → value → placeholder) carries the
        numbering from one text of a call to the next."""
        # One value, one placeholder, whichever type a detector gave it where (a booking code taken for a licence in
        # one message and for a name in the next must still read as the same code); and as Presidio replaces from
        # the end of the text backwards, the values are numbered in reading order first.
        type_of = {value: kind for kind, of_type in mapping.items() for value in of_type}
        findings = [(type_of.get(text[f[1]:f[2]], f[0]), *f[1:]) for f in findings]
        for kind, start, end, _, _ in sorted(findings, key=lambda f: f[1]):
            of_type = mapping.setdefault(kind, {})
            value = text[start:end]
            if value not in of_type:
                of_type[value] = (_same_person(value, of_type) if kind == "PERSON" else None) \
                    or f"<{kind}_{len(set(of_type.values())) + 1}>"
            type_of.setdefault(value, kind)
        operators = {"DEFAULT": OperatorConfig(_Pseudonym.NAME, {"mapping": mapping})}
        return self._engine.anonymize(text, [RecognizerResult(*f[:4]) for f in findings], operators).text
def _same_person(name: str, people: dict[str, str]) -> str | None:
    """The placeholder of a person already named whose name shares a word with this one: "Hi Jane!" in a reply to
    a tool result naming "Jane Smith" must read `Hi <PERSON_1>!`, or a model trained on it learns to make up a
    placeholder its input never had."""
    words = {word.lower() for word in name_words(name)}
    return next((placeholder for known, placeholder in people.items()
                 if words & {word.lower() for word in name_words(known)}), None)


class _Pseudonym(Operator):
    """Presidio operator: the n-th distinct value of a type in a call becomes `<TYPE_n>`, the same each time."""

    NAME = "pseudonym"

    def operate(self, text: str, params: dict) -> str:
        of_type = params["mapping"].setdefault(params["entity_type"], {})
        if text not in of_type:
            of_type[text] = f"<{params['entity_type']}_{len(set(of_type.values())) + 1}>"
        return of_type[text]

    def validate(self, params: dict) -> None:
        if not isinstance(params.get("mapping"), dict):
            raise ValueError("the pseudonym operator needs a mapping dict")

    def operator_name(self) -> str:
        return self.NAME

    def operator_type(self) -> OperatorType:
        return OperatorType.Anonymize
