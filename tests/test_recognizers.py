"""The analyzer finds the secrets and personal data agent logs leak, and leaves ordinary log text alone."""

import os

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # before Presidio is imported

import pytest
from presidio_analyzer import AnalyzerEngine

from pipeline.recognizers import ENTITIES, build_analyzer

SECRET_TYPES = {"API_KEY", "AWS_SECRET_KEY", "PRIVATE_KEY", "PASSWORD"}
PRIVATE_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----"
)


@pytest.fixture(scope="module")
def analyzer() -> AnalyzerEngine:
    return build_analyzer(deny_lists={"USER_ID": ["u_7731_kestrel"]}, patterns={"ACCOUNT_NUMBER": [r"ACCT-\d{8}"]})


def found(analyzer: AnalyzerEngine, text: str) -> dict[str, str]:
    """Each detected entity type with the text it covers."""
    return {r.entity_type: text[r.start:r.end] for r in analyzer.analyze(text, language="en")}


@pytest.mark.parametrize(
    ("text", "entity", "secret"),
    [
        ("export OPENAI_API_KEY=sk-proj-4fGh7Jk2LmN9pQrS8tUvWxYz1234567890abcd", "API_KEY",
         "sk-proj-4fGh7Jk2LmN9pQrS8tUvWxYz1234567890abcd"),
        ("the old key sk-A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6 still works", "API_KEY", "sk-A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"),
        ("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "API_KEY", "AKIAIOSFODNN7EXAMPLE"),
        ("temporary credentials ASIAY34FZKBOKMUTVV7A were issued", "API_KEY", "ASIAY34FZKBOKMUTVV7A"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AWS_SECRET_KEY",
         "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        ("git clone with token ghp_16C7e42F292c6912E7710c838347Ae178B4a", "API_KEY", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
        ("GH_TOKEN=github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOP", "API_KEY",
         "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOP"),
        ("post it with xoxb-2048392-1209387-AbCdEfGhIjKlMnOpQrStUvWx please", "API_KEY",
         "xoxb-2048392-1209387-AbCdEfGhIjKlMnOpQrStUvWx"),
        ("cookie session=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
         "API_KEY", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
        ("curl -H 'Authorization: Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0' https://api.example.com", "API_KEY",
         "9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
        (f"deploy key:\n{PRIVATE_KEY}\nend of config", "PRIVATE_KEY", PRIVATE_KEY),
        ("DATABASE_URL=postgres://app_user:S3cr3t!pass@db.internal:5432/orders", "PASSWORD", "S3cr3t!pass"),
        ("host=db.internal port=5432 user=app password=hunter2xyz dbname=orders", "PASSWORD", "hunter2xyz"),
        ('{"username": "ops", "password": "Tr0ub4dor&3"}', "PASSWORD", "Tr0ub4dor&3"),
    ],
)
def test_planted_secret_is_detected_with_its_type(analyzer: AnalyzerEngine, text: str, entity: str, secret: str) -> None:
    assert found(analyzer, text).get(entity) == secret


def test_us_street_address_is_detected_whole(analyzer: AnalyzerEngine) -> None:
    text = "Ship it to 1234 Main St Apt 5, Springfield, IL 62704 by Friday."
    assert found(analyzer, text)["STREET_ADDRESS"] == "1234 Main St Apt 5, Springfield, IL 62704"


def test_multi_line_international_address_is_detected_with_every_line(analyzer: AnalyzerEngine) -> None:
    text = "Address:\nBrucker Bundesstrasse 31\n Suite 245\n FÜRLING\n Austria 25173"
    assert found(analyzer, text)["STREET_ADDRESS"] == "Brucker Bundesstrasse 31\n Suite 245\n FÜRLING\n Austria 25173"


def test_a_delivery_date_is_not_an_address_but_a_name_and_number_where_one_lives_is(analyzer: AnalyzerEngine) -> None:
    assert "STREET_ADDRESS" not in found(analyzer, "It has shipped and should arrive by Friday, November 6.")
    assert found(analyzer, "Please deliver it to Allika 46, my new address.")["STREET_ADDRESS"].startswith("Allika 46")


@pytest.mark.parametrize("text", ["The difference is 393.0 dollars.", '{"brand": "mastercard", "last_four": "3521"}',
                                  "Search CLT to MIA on 2026-11-17.", '{"date": "2026-11-17", "price": 1538}',
                                  "(127 - (1577)) * 3", "The difference of $86 goes back to your card."])
def test_an_amount_a_date_or_a_cards_last_four_digits_is_no_address(analyzer: AnalyzerEngine, text: str) -> None:
    assert "STREET_ADDRESS" not in found(analyzer, text)


def test_the_ending_of_an_ordinary_word_in_a_long_policy_is_no_name(analyzer: AnalyzerEngine) -> None:
    from datetime import datetime

    from demo.long_logs import policy

    text = policy(datetime(2026, 11, 2, 9, 30))  # Rampart labels "ed" of "changed" and "en" of "given" as names
    assert not {text[r.start:r.end] for r in analyzer.analyze(text, language="en")} & {"changed", "given"}
    assert found(analyzer, "my id is maria_hernandez_1234")["PERSON"] == "maria_hernandez_1234"


def test_a_house_number_beside_its_street_and_a_postal_code_alone_are_addresses(analyzer: AnalyzerEngine) -> None:
    text = "Please deliver it to Allika 46, my new address."
    assert {text[r.start:r.end] for r in analyzer.analyze(text, language="en") if r.entity_type == "STREET_ADDRESS"} >= {"46"}
    assert found(analyzer, "my zip is 62704")["STREET_ADDRESS"] == "62704"


def test_date_is_a_date_of_birth_only_with_birth_context(analyzer: AnalyzerEngine) -> None:
    assert found(analyzer, "The patient was born on 03/14/1985 in a small town.")["DATE_OF_BIRTH"] == "03/14/1985"
    assert found(analyzer, "DOB: March 14, 1985")["DATE_OF_BIRTH"] == "March 14, 1985"
    assert "DATE_OF_BIRTH" not in found(analyzer, "The invoice was issued on 03/14/1985 and paid late.")


def test_a_date_right_after_a_name_is_a_date_of_birth(analyzer: AnalyzerEngine) -> None:
    text = "Passengers: veronica pires, 1995-04-26 and Noah Hernandez (1985-05-06)."
    assert {text[r.start:r.end] for r in analyzer.analyze(text, language="en") if r.entity_type == "DATE_OF_BIRTH"} == {
        "1995-04-26", "1985-05-06"}
    assert "DATE_OF_BIRTH" not in found(analyzer, "Noah Hernandez wants to fly on 2026-11-17.")


def test_deny_listed_value_and_configured_pattern_are_detected(analyzer: AnalyzerEngine) -> None:
    entities = found(analyzer, "User u_7731_kestrel asked about ACCT-20481234 again.")
    assert entities["USER_ID"] == "u_7731_kestrel"
    assert entities["ACCOUNT_NUMBER"] == "ACCT-20481234"


def test_people_emails_and_phones_are_detected(analyzer: AnalyzerEngine) -> None:
    entities = found(analyzer, "My name is Siiri Laine, e-mail siiri.laine@example.org, call me on 0490 75 40 81.")
    assert entities["PERSON"] == "Siiri Laine"
    assert entities["EMAIL_ADDRESS"] == "siiri.laine@example.org"
    assert entities["PHONE_NUMBER"] == "0490 75 40 81"


@pytest.mark.parametrize(
    "text",
    [
        "Please route this ticket to billing with high priority.",
        "Order AC-483920 shipped; see tracking for details.",
        '{"api_key": null, "password_hint": "", "access_token_expires_in": 3600, "secret_name": "prod-db"}',
        "commit 3f786850e387550fdab836ed7e6dc881de23001b fixed the retry loop",
        "The request id is 7c9e6679-7425-40de-944b-e07fc1f98f1b and took 1716835200123 ms?",
    ],
)
def test_ordinary_log_text_has_no_secrets(analyzer: AnalyzerEngine, text: str) -> None:
    assert not set(found(analyzer, text)) & SECRET_TYPES


def test_organizations_are_not_reported(analyzer: AnalyzerEngine) -> None:
    text = "Microsoft and Acme Corporation signed a deal with the United Nations."
    assert "ORGANIZATION" not in found(analyzer, text)
    assert "ORGANIZATION" not in ENTITIES


@pytest.mark.parametrize("text, secret", [
    ("Use this credential: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY and deploy.", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("write to jane.doe at example dot com please", "jane.doe at example dot com"),
    ("contact=jane.doe%40example.com", "jane.doe%40example.com"),
    ("the token is amFuZS5kb2VAZXhhbXBsZS5jb20=", "amFuZS5kb2VAZXhhbXBsZS5jb20="),
])
def test_bare_encoded_and_disguised_secrets_are_found(analyzer, text, secret):
    assert secret in {text[r.start:r.end] for r in analyzer.analyze(text, language="en")}


@pytest.mark.parametrize("text", [
    "request 9f1c2e7a-4b3d-8f60-a1b2-c3d4e5f60718 for order ORD-2026-11-000123",
    "commit 3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39 fixed the parser",
    "sku ABC_DEF_GHI_123456, shipment 1Z999AA10123456784",
    "Meet me at home, and dot the i's.",
])
def test_ids_and_hashes_without_a_credential_word_are_not_secrets(analyzer, text):
    assert not [r for r in analyzer.analyze(text, language="en") if r.entity_type in ("API_KEY", "EMAIL_ADDRESS")]
