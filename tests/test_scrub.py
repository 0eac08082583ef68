"""The scrub step around the analyzer: placeholders, JSON, the cache, failing closed.

A small regex analyzer stands in for Presidio here; tests/test_scrub_presidio.py runs the real one.
"""

import json
import re
from datetime import datetime

import pandas as pd

from pipeline.propagation import Known
from pipeline.warehouse import frame
from pipeline.scrub import scrub_calls
from pipeline.settings import ScrubConfig

NAMES = re.compile(r"Alice Smith|Bob Jones")
EMAILS = re.compile(r"[\w.]+@[\w.]+\.\w+")
CARDS = re.compile(r"\b4\d{15}\b")


class RegexAnalyzer:
    def __init__(self, fail_on: str | None = None):
        self.seen: list[str] = []
        self.fail_on = fail_on

    def analyze(self, texts):
        self.seen += texts
        results = []
        for text in texts:
            if self.fail_on and self.fail_on in text:
                results.append("scrub failed: boom")
                continue
            found = [("PERSON", m.start(), m.end(), 0.85, "FakeNameRecognizer") for m in NAMES.finditer(text)]
            found += [("EMAIL_ADDRESS", m.start(), m.end(), 1.0, "FakeEmailRecognizer") for m in EMAILS.finditer(text)]
            found += [("CREDIT_CARD", m.start(), m.end(), 1.0, "FakeCardRecognizer") for m in CARDS.finditer(text)]
            results.append(found)
        return results


def call(call_id: str, user: str, *, tool_result: dict | None = None, arguments: dict | None = None, session: str = "s1", reply: str | None = "ok") -> dict:
    messages = [{"role": "system", "content": "You are the Acme support agent."}, {"role": "user", "content": user}]
    if tool_result is not None:
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": json.dumps({"order_id": "AC-1"})}}]},
            {"role": "tool", "tool_call_id": "c1", "content": json.dumps(tool_result)},
        ]
    tools = [{"type": "function", "function": {"name": "lookup_customer", "description": "Find a customer by email, e.g. alice.smith@example.com", "parameters": {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]}}}]
    return {
        "call_id": call_id, "called_at": datetime(2026, 11, 3, 10), "time_from_file": False, "source_file": "a.jsonl",
        "source_line": int(call_id[-1]), "turn": 0, "format": "request_response", "session_id": session,
        "workload": "order_lookup", "model": "gpt-4o", "messages": json.dumps(messages), "tools": json.dumps(tools),
        "response_text": reply,
        "response_tool_calls": json.dumps([{"id": "c2", "name": "lookup_customer", "arguments": arguments}] if arguments else []),
        "finish_reason": "stop", "prompt_tokens": 10, "completion_tokens": 2, "latency_ms": None, "cost_usd": None,
        "occurrences": 1, "content_hash": "h" + call_id,
    }


def raw(*calls: dict) -> pd.DataFrame:
    return frame("raw_calls", list(calls))


def test_same_value_gets_the_same_placeholder_within_a_call_and_numbering_restarts_per_call():
    first = call("c1", "I am Alice Smith, and Bob Jones is my husband. Alice Smith again: alice@example.com", reply="Hello Alice Smith")
    second = call("c2", "Bob Jones here.", session="s2")

    result = scrub_calls(raw(first, second), RegexAnalyzer(), ScrubConfig(processes=0))

    one, two = result.clean_calls.to_dict("records")
    user = json.loads(one["messages"])[1]["content"]
    assert user == "I am <PERSON_1>, and <PERSON_2> is my husband. <PERSON_1> again: <EMAIL_ADDRESS_1>"
    assert one["response_text"] == "Hello <PERSON_1>"
    assert json.loads(two["messages"])[1]["content"] == "<PERSON_1> here."


def test_session_scope_keeps_placeholders_across_the_calls_of_a_session():
    calls = raw(call("c1", "Bob Jones and Alice Smith"), call("c2", "Alice Smith again"))
    result = scrub_calls(calls, RegexAnalyzer(), ScrubConfig(processes=0, scope="session"))
    second = json.loads(result.clean_calls.iloc[1]["messages"])[1]["content"]
    assert second == "<PERSON_2> again"


def test_json_tool_results_and_arguments_keep_their_structure_and_lose_their_values():
    order = {"order_id": "AC-1", "customer": {"name": "Alice Smith", "email": "alice@example.com"}, "card": 4111111111111111, "items": 2}
    result = scrub_calls(raw(call("c1", "where is my order", tool_result=order, arguments={"email": "bob@example.org"})), RegexAnalyzer(), ScrubConfig(processes=0))

    [clean] = result.clean_calls.to_dict("records")
    tool_message = json.loads(clean["messages"])[3]
    assert json.loads(tool_message["content"]) == {
        "order_id": "AC-1", "customer": {"name": "<PERSON_1>", "email": "<EMAIL_ADDRESS_1>"}, "card": "<CREDIT_CARD_1>", "items": 2,
    }
    assert json.loads(clean["response_tool_calls"]) == [{"id": "c2", "name": "lookup_customer", "arguments": {"email": "<EMAIL_ADDRESS_3>"}}]
    tool = json.loads(clean["tools"])[0]
    assert tool["function"]["description"] == "Find a customer by email, e.g. <EMAIL_ADDRESS_2>"
    assert tool["function"]["parameters"]["required"] == ["email"]


def test_nothing_raw_is_left_in_clean_calls_or_the_audit():
    planted = ["Alice Smith", "alice@example.com", "4111111111111111", "bob@example.org", "session-of-alice@example.com"]
    calls = raw(call("c1", "Alice Smith, alice@example.com, card 4111111111111111", arguments={"email": "bob@example.org"}, session="session-of-alice@example.com"))
    result = scrub_calls(calls, RegexAnalyzer(), ScrubConfig(processes=0))
    dumped = result.clean_calls.to_json() + result.pii_audit.to_json()
    assert not [value for value in planted if value in dumped]


def test_each_distinct_text_is_analyzed_once():
    analyzer = RegexAnalyzer()
    calls = raw(*(call(f"c{i}", "Alice Smith asks where her order is") for i in range(1, 6)))
    result = scrub_calls(calls, analyzer, ScrubConfig(processes=0))
    assert len(analyzer.seen) == len(set(analyzer.seen))
    assert result.stats.texts > result.stats.distinct_texts == len(analyzer.seen)


def test_audit_counts_findings_per_call_by_type_and_recognizer_without_values():
    result = scrub_calls(raw(call("c1", "Alice Smith and Bob Jones, alice@example.com")), RegexAnalyzer(), ScrubConfig(processes=0))
    rows = result.pii_audit[["entity_type", "recognizer", "count"]].to_dict("records")
    assert {(r["entity_type"], r["recognizer"], r["count"]) for r in rows} >= {("PERSON", "FakeNameRecognizer", 2), ("EMAIL_ADDRESS", "FakeEmailRecognizer", 2)}
    assert result.stats.entities["PERSON"] == 2
    assert result.clean_calls.iloc[0]["pii_findings"] == sum(r["count"] for r in rows)


def test_a_call_that_could_not_be_scrubbed_is_quarantined_and_the_others_go_on():
    calls = raw(call("c1", "fine text"), call("c2", "poison text"), call("c3", "also fine"))
    result = scrub_calls(calls, RegexAnalyzer(fail_on="poison"), ScrubConfig(processes=0))

    assert list(result.clean_calls["call_id"]) == ["c1", "c3"]
    [reject] = result.quarantine.to_dict("records")
    assert (reject["step"], reject["source_line"], reject["reason"], reject["excerpt"]) == ("scrub", 2, "scrub failed: boom", "")
    assert result.stats.reconciles() and (result.stats.calls, result.stats.quarantined) == (3, 1)


def test_text_over_the_size_limit_quarantines_its_call():
    result = scrub_calls(raw(call("c1", "x" * 500), call("c2", "short")), RegexAnalyzer(), ScrubConfig(processes=0, max_text_chars=100))
    assert list(result.clean_calls["call_id"]) == ["c2"]
    assert result.quarantine.iloc[0]["reason"] == "text over the scrub size limit (500 chars > 100)"


def test_an_analyzer_that_loses_texts_fails_every_call_closed():
    class Lossy(RegexAnalyzer):
        def analyze(self, texts):
            return super().analyze(texts)[:-1]

    result = scrub_calls(raw(call("c1", "a"), call("c2", "b")), Lossy(), ScrubConfig(processes=0))
    assert result.clean_calls.empty and result.stats.quarantined == 2


def test_reply_json_is_left_byte_for_byte_when_nothing_in_it_is_personal():
    reply = '{"order_id":"AC-1","amount":12.5}'
    [clean] = scrub_calls(raw(call("c1", "refund", reply=reply)), RegexAnalyzer(), ScrubConfig(processes=0)).clean_calls.to_dict("records")
    assert clean["response_text"] == reply


def test_the_vault_keeps_raw_values_only_encrypted_and_only_when_turned_on():
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    calls = raw(call("c1", "Alice Smith wrote from alice@example.com"), call("c2", "nothing personal"))
    sealed = scrub_calls(calls, RegexAnalyzer(), ScrubConfig(processes=0, vault_key=key)).vault
    row = sealed.set_index("call_id").loc["c1"]
    assert "Alice" not in row["sealed"]
    assert json.loads(Fernet(key.encode()).decrypt(row["sealed"].encode())) == {
        "<PERSON_1>": "Alice Smith", "<EMAIL_ADDRESS_1>": "alice@example.com",
        "<EMAIL_ADDRESS_2>": "alice.smith@example.com",  # in the tool definition's description
    }
    assert scrub_calls(calls, RegexAnalyzer(), ScrubConfig(processes=0)).vault.empty


def test_no_field_of_a_call_keeps_a_planted_value():
    planted = "alice@example.com"
    card = 4539068144173050
    messages = [
        {"role": "system", "content": "You are the Acme support agent."},
        {"role": "user", "name": planted, "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"call-{planted}", "type": "function", "function": {"name": f"find_{planted}", "arguments": card}}]},
        {"role": "tool", "tool_call_id": f"call-{planted}",
         "content": json.dumps({planted: {"card": float(card)}, "people": [{"name": "Bob Jones"}]})},
        {"role": "tool", "tool_call_id": "c2", "content": '{"note": "Alice Smith", "note": "ok"}'},
    ]
    tools = [{"type": "function", "function": {"name": f"find_{planted}", "description": "Find a customer.", "parameters": {
        "type": "object", "properties": {"name": {"type": "string", "description": f"as in {planted}"}}, "required": ["name"]}}}]
    planted_call = call("c1", "hi") | {
        "messages": json.dumps(messages), "tools": json.dumps(tools), "model": f"ft:gpt-4o:{planted}",
        "finish_reason": planted, "source_file": f"logs/{planted}/a.jsonl",
        "response_tool_calls": json.dumps([{"id": planted, "name": f"find_{planted}", "arguments": card}]),
    }

    [clean] = scrub_calls(raw(planted_call), RegexAnalyzer(), ScrubConfig(processes=0)).clean_calls.to_dict("records")

    stored = json.dumps(clean, default=str)
    for value in (planted, str(card), "Alice Smith", "Bob Jones"):
        assert value not in stored, value
    function = json.loads(clean["tools"])[0]["function"]
    assert function["name"] == json.loads(clean["response_tool_calls"])[0]["name"]  # one placeholder for one name
    assert function["parameters"]["required"] == ["name"] and function["parameters"]["type"] == "object"


def test_session_ids_are_keyed_hashes_that_keep_the_grouping():
    calls = raw(call("c1", "a", session="jane@example.com"), call("c2", "b", session="jane@example.com"))
    one = scrub_calls(calls, RegexAnalyzer(), ScrubConfig(processes=0), session_key=b"one").clean_calls["session_id"]
    other = scrub_calls(calls, RegexAnalyzer(), ScrubConfig(processes=0), session_key=b"other").clean_calls["session_id"]
    assert one[0] == one[1] and one[0] != other[0] and "jane" not in one[0]


def test_the_session_key_is_made_once_readable_by_its_owner_only(tmp_path):
    from pipeline.scrub import session_key

    key = session_key(tmp_path / "secrets")
    assert len(key) == 32 and session_key(tmp_path / "secrets") == key
    assert (tmp_path / "secrets" / "session.key").stat().st_mode & 0o077 == 0


def test_a_call_whose_json_is_too_deep_is_quarantined_and_the_others_scrubbed():
    deep = "[" * 5000 + "]" * 5000
    calls = raw(call("c1", "fine"), call("c2", "x") | {"response_tool_calls": json.dumps([{"id": "c", "name": "f", "arguments": {}}])[:-3] + deep + "}]"})
    result = scrub_calls(calls, RegexAnalyzer(), ScrubConfig(processes=0))
    assert list(result.clean_calls["call_id"]) == ["c1"]
    assert result.quarantine["reason"].str.startswith("scrub failed").all()


def user_text(result, row: int = 0) -> str:
    return user_text_of(result.clean_calls.to_dict("records")[row])


def user_text_of(clean: dict) -> str:
    return json.loads(clean["messages"])[1]["content"]


def test_a_value_found_once_is_removed_wherever_else_the_call_has_it_and_so_are_the_words_of_a_name():
    # the detector sees "Alice Smith" in the reply only; the user wrote it in lower case, and "Smith" alone later
    first = call("c1", "this is alice smith. Mrs Smith, that is.", reply="Hello Alice Smith, and Bob Jones")

    result = scrub_calls(raw(first), RegexAnalyzer(), ScrubConfig(processes=0))

    # one person, one placeholder, however much of the name is written
    assert user_text(result) == "this is <PERSON_1>. Mrs <PERSON_1>, that is."
    assert result.clean_calls.iloc[0]["response_text"] == "Hello <PERSON_1>, and <PERSON_2>"
    assert "Propagation" in set(result.pii_audit["recognizer"])


def test_a_house_number_found_apart_from_its_street_is_not_sought_elsewhere_but_the_address_and_postal_code_are():
    known = Known()
    for value in ("12", "12 Oak Street", "62704", "53-320"):
        known.add("STREET_ADDRESS", value)
    text = "Send it to 12 Oak Street, 62704 (or 53-320): 12 bags at 12:30 for $12."
    assert [text[start:end] for _, start, end, _, _ in known.findings(text, [])] == ["12 Oak Street", "62704", "53-320"]


def test_an_identifier_made_from_a_found_name_is_replaced_whole_in_text_arguments_and_tool_results():
    first = call("c1", "Alice Smith here, my user id is alice_smith_1234.",
                 tool_result={"user_id": "alice_smith_1234", "note": "account of alice.smith"},
                 arguments={"account": "alice_smith_1234"})

    [clean] = scrub_calls(raw(first), RegexAnalyzer(), ScrubConfig(processes=0)).clean_calls.to_dict("records")

    text = clean["messages"] + clean["response_tool_calls"]
    assert "alice" not in text.lower() and "smith" not in text.lower()
    assert json.loads(json.loads(clean["messages"])[3]["content"])["user_id"] == "<USER_ID_1>"
    assert json.loads(clean["response_tool_calls"])[0]["arguments"]["account"] == "<USER_ID_1>"


def test_values_under_personal_keys_go_whatever_the_detector_says_and_a_products_name_stays():
    passengers = {"passengers": [{"first_name": "Aarav", "last_name": "Garcia", "dob": "1990-01-02"},
                                 {"first_name": "Noah", "last_name": "Hernandez", "dob": "1985-05-06"}],
                  "user": {"name": "Mia Li"}, "items": [{"name": "Wireless Mouse", "price": 20}]}
    first = call("c1", "Who is on it?", tool_result=passengers, reply="Aarav Garcia and noah hernandez; Mia Li booked.")

    [clean] = scrub_calls(raw(first), RegexAnalyzer(), ScrubConfig(processes=0)).clean_calls.to_dict("records")

    result = json.loads(json.loads(clean["messages"])[3]["content"])
    assert result["passengers"][1] == {"first_name": "<PERSON_3>", "last_name": "<PERSON_4>", "dob": "<DATE_OF_BIRTH_2>"}
    assert result["user"]["name"].startswith("<PERSON_")
    assert result["items"][0]["name"] == "Wireless Mouse"
    for value in ("Aarav", "Garcia", "noah", "hernandez", "Mia", "Li "):
        assert value not in clean["response_text"]


def test_the_schema_of_a_tool_and_tool_names_keep_their_words():
    first = call("c1", "Alice Smith: run it for alice_smith", arguments={"q": "x"})
    [clean] = scrub_calls(raw(first), RegexAnalyzer(), ScrubConfig(processes=0)).clean_calls.to_dict("records")
    [tool] = json.loads(clean["tools"])
    assert tool["function"]["name"] == "lookup_customer"
    assert tool["function"]["parameters"] == json.loads(first["tools"])[0]["function"]["parameters"]
    assert json.loads(clean["response_tool_calls"])[0]["name"] == "lookup_customer"
    assert user_text_of(clean) == "<PERSON_1>: run it for <USER_ID_1>"


def test_a_name_found_in_a_later_call_of_the_conversation_is_removed_from_an_earlier_one():
    calls = raw(call("c1", "hi im smith, cancel my trip", session="s9"), call("c2", "Alice Smith", session="s9"))
    result = scrub_calls(calls, RegexAnalyzer(), ScrubConfig(processes=0))
    assert user_text(result, 0) == "hi im <PERSON_1>, cancel my trip"
    # a session id that stands for more than a conversation (a client's whole traffic) shares nothing
    crowd = scrub_calls(calls, RegexAnalyzer(), ScrubConfig(processes=0, conversation_calls=1))
    assert "smith" in user_text(crowd, 0)


def test_characters_that_show_as_nothing_are_dropped_so_a_split_value_is_found():
    hidden = "alice@exa\u200bmple.com"
    first = call("c1", f"mail {hidden}", tool_result={"contact": hidden}, reply=f"sent to {hidden}")
    [clean] = scrub_calls(raw(first), RegexAnalyzer(), ScrubConfig(processes=0)).clean_calls.to_dict("records")
    assert "\u200b" not in clean["messages"] + clean["response_text"]
    assert user_text_of(clean) == "mail <EMAIL_ADDRESS_1>"
    assert json.loads(json.loads(clean["messages"])[3]["content"]) == {"contact": "<EMAIL_ADDRESS_1>"}


def test_a_first_name_in_the_reply_reads_as_the_person_the_tool_result_named():
    first = call("c1", "where is my order?", tool_result={"customer": {"name": "Alice Smith"}}, reply="Hi Alice!")
    [clean] = scrub_calls(raw(first), RegexAnalyzer(), ScrubConfig(processes=0)).clean_calls.to_dict("records")
    assert json.loads(json.loads(clean["messages"])[3]["content"]) == {"customer": {"name": "<PERSON_1>"}}
    assert clean["response_text"] == "Hi <PERSON_1>!"


def test_the_agents_own_text_in_many_calls_is_never_changed_by_what_one_customers_call_holds():
    def with_policy(row: dict, minute: int) -> dict:
        messages = json.loads(row["messages"])
        messages[0]["content"] = f"The time is 10:{minute:02d}. You are the support agent of Smith Hardware."
        return {**row, "messages": json.dumps(messages)}

    calls = [with_policy(call(f"c{i}", "I am Alice Smith" if i == 0 else "Where is my order?", session=f"s{i}"), i)
             for i in range(25)]
    result = scrub_calls(raw(*calls), RegexAnalyzer(), ScrubConfig(processes=0))
    first = json.loads(result.clean_calls.iloc[0]["messages"])
    assert first[0]["content"] == "The time is 10:00. You are the support agent of Smith Hardware."
    assert first[1]["content"] == "I am <PERSON_1>"
    few = scrub_calls(raw(*calls[:3]), RegexAnalyzer(), ScrubConfig(processes=0))  # a text in 3 calls is no policy
    assert json.loads(few.clean_calls.iloc[0]["messages"])[0]["content"].endswith("agent of <PERSON_1> Hardware.")


def test_a_date_in_the_agents_own_text_is_scrubbed_of_what_the_conversation_found():
    def for_customer(row: dict, day: int) -> dict:
        messages = json.loads(row["messages"])
        messages[0]["content"] = f"Customer record 1990-01-{day:02d}. You are the support agent."
        return {**row, "messages": json.dumps(messages)}

    calls = [for_customer(call(f"c{i}", "Where is my order?", tool_result={"dob": f"1990-01-{i + 1:02d}"}, session=f"s{i}"), i + 1)
             for i in range(25)]
    result = scrub_calls(raw(*calls), RegexAnalyzer(), ScrubConfig(processes=0))
    assert {json.loads(m)[0]["content"] for m in result.clean_calls["messages"]} == {
        "Customer record <DATE_OF_BIRTH_1>. You are the support agent."}


def test_a_system_prompt_that_holds_each_customers_own_number_is_not_the_agents_own_text():
    def for_customer(row: dict, number: int) -> dict:
        messages = json.loads(row["messages"])
        messages[0]["content"] = f"Customer {number}. You are the support agent."
        return {**row, "messages": json.dumps(messages)}

    calls = [for_customer(call(f"c{i}", "Where is my order?", tool_result={"user_id": str(4000 + i)}, session=f"s{i}"), 4000 + i)
             for i in range(25)]
    result = scrub_calls(raw(*calls), RegexAnalyzer(), ScrubConfig(processes=0))
    assert {json.loads(m)[0]["content"] for m in result.clean_calls["messages"]} == {
        "Customer <USER_ID_1>. You are the support agent."}
