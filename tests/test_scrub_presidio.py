"""The scrub step with the real Presidio analyzer: every kind of secret agent logs leak is gone afterwards."""

import json

import pytest

from pipeline.scrub import LocalAnalyzer, PooledAnalyzer, scrub_calls
from pipeline.settings import ScrubConfig
from test_scrub import call, raw

SECRETS = {
    "OpenAI key": "sk-proj-4fJ9kL2mN8pQ1rS5tU7vW3xY6zA0bC9dE2fG4hJ6kL8mN1pQ",
    "AWS access key id": "AKIAIOSFODNN7EXAMPLE",
    "AWS secret key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "GitHub token": "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "Slack token": "xoxb-2048123456-4096123456-AbCdEfGhIjKlMnOpQrStUvWx",
    "JWT": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "Bearer token": "Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "private key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7V1xq2Z8\nk3J9fQ0pL5mR2sT7uV4wX1yZ\n-----END RSA PRIVATE KEY-----",
    "password in a URL": "postgres://admin:Hunter2Secret@db.internal:5432/orders",
    "email": "maria.gonzalez@example.org",
    "phone": "(415) 555-0132",
    "card": "4111 1111 1111 1111",
    "person": "Maria Gonzalez",
    "street address": "742 Evergreen Terrace, Springfield, IL 62704",
    "date of birth": "born on 03/14/1985",
}
# What must be gone: the secret part of each planted value.
SECRET_PARTS = {
    **SECRETS,
    "Bearer token": "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "private key": "MIIEowIBAAKCAQEA7V1xq2Z8",
    "password in a URL": "Hunter2Secret",
    "street address": "742 Evergreen Terrace",
    "date of birth": "03/14/1985",
}


@pytest.fixture(scope="module")
def analyzer():
    return LocalAnalyzer(ScrubConfig(processes=0))


def planted_call() -> dict:
    sentence = " ".join(f"My {kind} is {value}." for kind, value in SECRETS.items())
    tool_result = {kind.replace(" ", "_"): value for kind, value in SECRETS.items()}
    return call("c1", sentence, tool_result=tool_result, arguments={"note": sentence})


def test_every_secret_kind_is_gone_from_messages_tool_arguments_and_tool_results(analyzer):
    result = scrub_calls(raw(planted_call()), analyzer, ScrubConfig(processes=0))

    [clean] = result.clean_calls.to_dict("records")
    dumped = json.dumps(clean, default=str)
    assert [kind for kind, part in SECRET_PARTS.items() if part in dumped or json.dumps(part)[1:-1] in dumped] == []
    tool_result = json.loads(json.loads(clean["messages"])[3]["content"])  # still valid JSON, keys kept
    assert set(tool_result) == {kind.replace(" ", "_") for kind in SECRETS}
    assert json.loads(clean["response_tool_calls"])[0]["arguments"]["note"].startswith("My ")


def test_placeholders_name_the_entity_and_repeat_for_the_same_value(analyzer):
    text = "Maria Gonzalez wrote from maria.gonzalez@example.org; please reply to maria.gonzalez@example.org."
    [clean] = scrub_calls(raw(call("c1", text)), analyzer, ScrubConfig(processes=0)).clean_calls.to_dict("records")
    assert json.loads(clean["messages"])[1]["content"] == "<PERSON_1> wrote from <EMAIL_ADDRESS_1>; please reply to <EMAIL_ADDRESS_1>."


def test_ordinary_agent_text_is_left_alone(analyzer):
    text = "Please route this ticket to billing with high priority. Order AC-483920 was charged twice."
    [clean] = scrub_calls(raw(call("c1", text)), analyzer, ScrubConfig(processes=0)).clean_calls.to_dict("records")
    assert json.loads(clean["messages"])[1]["content"] == text


def test_tool_names_are_no_people_or_nationalities_but_a_name_beside_them_is_scrubbed(analyzer):
    names = ["Finish", "raiderio_call_for_raider_io"]  # ToolBench's: spaCy reads a nationality, Rampart a person
    row = call("c1", "Ask Maria Gonzalez for her score, then finish.")
    row["tools"] = json.dumps([{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}} for n in names])
    row["response_tool_calls"] = json.dumps([{"id": "c2", "name": "Finish", "arguments": {}}])
    [clean] = scrub_calls(raw(row), analyzer, ScrubConfig(processes=0)).clean_calls.to_dict("records")
    assert [tool["function"]["name"] for tool in json.loads(clean["tools"])] == names
    assert json.loads(clean["response_tool_calls"])[0]["name"] == "Finish"
    assert "Maria Gonzalez" not in clean["messages"]


def test_presidio_in_a_worker_process_scrubs_as_it_does_in_this_one(analyzer):
    calls = raw(call("c1", "Maria Gonzalez wrote from maria.gonzalez@example.org"), call("c2", "hello"))
    config = ScrubConfig(processes=1)
    pooled = PooledAnalyzer(config)
    try:
        in_workers = scrub_calls(calls, pooled, config).clean_calls
    finally:
        pooled.close()
    here = scrub_calls(calls, analyzer, ScrubConfig(processes=0)).clean_calls
    assert list(in_workers["messages"]) == list(here["messages"])
    assert "<PERSON_1>" in in_workers["messages"].iloc[0]


class _SlowOnPurpose:
    """A worker's analyzer that takes 30 s on a text saying "slow", dies on one saying "die", and finds e-mails."""

    def analyze(self, texts):
        import os
        import re
        import time

        if any("die" in text for text in texts):
            os._exit(3)
        if any("slow" in text for text in texts):
            time.sleep(30)
        emails = re.compile(r"[\w.]+@[\w.]+\.\w+")
        return [[("EMAIL_ADDRESS", m.start(), m.end(), 1.0, "Fake") for m in emails.finditer(t)] for t in texts]


def _start_slow_worker(config):
    import pipeline.scrub

    pipeline.scrub._worker = _SlowOnPurpose()


def test_a_slow_text_or_a_dead_worker_quarantines_only_its_own_call():
    config = ScrubConfig(processes=1, timeout_s=2, text_timeout_s=1)
    analyzer = PooledAnalyzer(config, start=_start_slow_worker)
    try:
        calls = raw(call("c1", "hello"), call("c2", "a slow one"), call("c3", "bye"), call("c4", "die now"))
        result = scrub_calls(calls, analyzer, config)
    finally:
        analyzer.close()
    assert list(result.clean_calls["call_id"]) == ["c1", "c3"]
    reasons = dict(zip(result.quarantine["source_line"], result.quarantine["reason"]))
    assert reasons == {2: "scrub timed out (over 1 s for one text)", 4: "scrub failed: its worker died (exit code 3)"}


def test_a_text_of_too_many_digits_is_not_analyzed_and_its_call_is_quarantined(analyzer):
    config = ScrubConfig(processes=0, max_text_digits=50)
    result = scrub_calls(raw(call("c1", "7" * 60), call("c2", "hello")), analyzer, config)
    assert list(result.clean_calls["call_id"]) == ["c2"]
    assert result.quarantine["reason"].tolist() == ["text with too many digits to scrub in time (60 > 50)"]


def test_deployment_deny_lists_and_patterns_are_scrubbed():
    config = ScrubConfig(processes=0, deny_lists={"PERSON": ["Quinby"]}, patterns={"ACCOUNT_NUMBER": [r"ACCT-\d{8}"]})
    result = scrub_calls(raw(call("c1", "Quinby asked about ACCT-12345678.")), LocalAnalyzer(config), config)
    assert json.loads(result.clean_calls.iloc[0]["messages"])[1]["content"] == "<PERSON_1> asked about <ACCOUNT_NUMBER_1>."


def test_allowed_values_are_kept_but_only_when_they_match_whole():
    text = "To whom it may concern: my order AC-560943 (Glacier trekking poles). - Jonathon Allen"
    # spaCy's small model takes the order id for a name
    allowed = ScrubConfig(processes=0, spacy_model="en_core_web_sm", rampart=False, allow=[r"AC-\d{6}", "Allen"])
    [clean] = scrub_calls(raw(call("c1", text)), LocalAnalyzer(allowed), allowed).clean_calls.to_dict("records")
    assert json.loads(clean["messages"])[1]["content"] == (
        "To whom it may concern: my order AC-560943 (Glacier trekking poles). - <PERSON_1>"
    )


def test_a_finding_inside_an_allowed_value_is_dropped():
    config = ScrubConfig(processes=0, deny_lists={"PHONE_NUMBER": ["397848"]}, allow=[r"AC-\d{6}"])
    text = "Order AC-397848, or call 397848."
    [clean] = scrub_calls(raw(call("c1", text)), LocalAnalyzer(config), config).clean_calls.to_dict("records")
    assert json.loads(clean["messages"])[1]["content"] == "Order AC-397848, or call <PHONE_NUMBER_1>."


def test_names_in_replies_later_names_of_a_list_and_ids_made_from_names_are_gone(analyzer):
    user = "hi, this is aarav garcia. My user id is aarav_garcia_4821, booking 8JX2WO."
    tool_result = {"user_id": "aarav_garcia_4821", "passengers": [
        {"first_name": "Aarav", "last_name": "Garcia", "dob": "1990-01-02"},
        {"first_name": "Noah", "last_name": "Hernandez", "dob": "1985-05-06"}]}
    reply = ("Passengers: - Aarav Garcia, DOB: 1990-01-02 - Noah Hernandez, DOB: 1985-05-06. "
             "Thank you, Aarav; Noah is on it too. There is one more passenger: Mia Kowalczyk.")
    [clean] = scrub_calls(raw(call("c1", user, tool_result=tool_result, reply=reply)), analyzer,
                          ScrubConfig(processes=0)).clean_calls.to_dict("records")
    text = clean["messages"] + clean["response_text"]
    for value in ("aarav", "garcia", "Noah", "Hernandez", "Mia", "Kowalczyk", "4821", "1985-05-06"):
        assert value.lower() not in text.lower()
    assert "8JX2WO" in text  # a booking code is nobody's name




def _start_without_models(config):
    raise FileNotFoundError("the Rampart model files are missing")


def test_a_detector_that_cannot_load_quarantines_every_call():
    config = ScrubConfig(processes=1, timeout_s=5, text_timeout_s=2)
    analyzer = PooledAnalyzer(config, start=_start_without_models)
    try:
        result = scrub_calls(raw(call("c1", "hello Aarav"), call("c2", "bye")), analyzer, config)
    finally:
        analyzer.close()
    assert result.clean_calls.empty and len(result.quarantine) == 2
    assert all(reason.startswith("scrub") for reason in result.quarantine["reason"])


class _MissesEmails:
    def analyze(self, texts):
        return [[] for _ in texts]


def test_what_the_detectors_let_through_is_caught_by_the_last_pass_and_quarantined():
    calls = raw(call("c1", "my key is sk-proj-4fJ9kL2mN8pQ1rS5tU7vW3xY6zA0bC9dE2fG4hJ6kL8mN1pQ"), call("c2", "hello"))
    result = scrub_calls(calls, _MissesEmails(), ScrubConfig(processes=0, allow=[r"alice\.smith@example\.com"]))
    assert list(result.clean_calls["call_id"]) == ["c2"]
    assert result.stats.verification_failures == 1 and result.stats.reconciles()
    assert result.quarantine["reason"].tolist() == ["scrub verification: API_KEY still found after scrubbing"]
