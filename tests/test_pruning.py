"""Static-text pruning and context fitting: what an adapter reads of a long agent call."""

import json

from pipeline.context import ContextPolicy, InputRule, choose_window, fits, window_coverage
from pipeline.copying import learn_copying
from pipeline.pruning import learn_pruning

POLICY = ["You are the airline's agent.", "Never book a basic economy change.", "Always confirm before cancelling."]
TOOLS = [
    {"type": "function", "function": {"name": "get_reservation", "description": "Fetch a reservation. " * 20,
                                      "parameters": {"type": "object", "properties": {"reservation_id": {"type": "string"}, "verbose": {"type": "boolean"},
                                                                    "cabin": {"enum": ["economy", "business"]}},
                                                     "required": ["reservation_id", "cabin"]}}},
    {"type": "function", "function": {"name": "cancel", "description": "Cancel a reservation. " * 20,
                                      "parameters": {"type": "object", "properties": {"reservation_id": {"type": "string"}}}}},
]


def call(i: int, conversation: list[dict] | None = None, system: list[str] | None = None) -> dict:
    lines = (system or POLICY) + [f"Current time: 2026-11-{1 + i % 28:02d} 10:{i % 60:02d} EST"]
    conversation = conversation or [{"role": "user", "content": f"What is in reservation R{i:05d}?"}]
    reply = [{"name": "get_reservation", "arguments": {"reservation_id": f"R{i:05d}"}}]
    return {"messages": json.dumps([{"role": "system", "content": "\n".join(lines)}, *conversation]),
            "tools": json.dumps(TOOLS), "response_text": None, "response_tool_calls": json.dumps(reply)}


def system_text(prepared: dict) -> str:
    return next(m["content"] for m in json.loads(prepared["messages"]) if m["role"] == "system")


def test_pruning_drops_the_repeated_policy_keeps_the_changing_date_and_shortens_tools_to_signatures():
    rule = learn_pruning([call(i) for i in range(20)])

    pruned = rule.apply(call(40))

    assert system_text(pruned) == "2026-11-13 10:40\nTools: get_reservation(reservation_id, cabin: economy|business)"
    assert json.loads(pruned["tools"]) == []  # `cancel` is offered but never called: the adapter does not need it
    assert json.loads(pruned["messages"])[1:] == json.loads(call(40)["messages"])[1:]


def test_pruning_leaves_text_that_varies_between_calls_alone():
    calls = [call(i, system=POLICY + [f"The customer's favourite colour is {colour}."]) for i, colour in enumerate(["red", "green", "blue"] * 5)]

    rule = learn_pruning(calls)

    assert "The customer's favourite colour is green." in system_text(rule.apply(calls[1]))
    assert POLICY[0] not in system_text(rule.apply(calls[1]))


def test_a_line_in_too_few_calls_is_not_static():
    calls = [call(i, system=POLICY + (["Holiday rules apply."] if i < 5 else [])) for i in range(20)]

    assert "Holiday rules apply." in system_text(learn_pruning(calls).apply(calls[0]))


def test_the_input_rule_round_trips_through_json():
    calls = [call(i) for i in range(10)]
    rule = InputRule(learn_pruning(calls), ContextPolicy(window=4, list_items=3), learn_copying(calls, 0.9))

    assert InputRule.from_dict(json.loads(json.dumps(rule.to_dict()))) == rule
    assert rule.describe().endswith("last 4 messages; copies get_reservation.reservation_id from its input")
    older = {key: value for key, value in rule.to_dict().items() if key != "copying"}  # an adapter trained before copying
    assert InputRule.from_dict(older).copying.arguments == ()


def long_conversation() -> list[dict]:
    history = []
    for turn in range(6):
        history += [
            {"role": "user", "content": f"question {turn}"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": f"t{turn}", "type": "function",
                                                                   "function": {"name": "get_reservation", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": f"t{turn}", "content": json.dumps({"flights": list(range(50)), "note": "x" * 50})},
            {"role": "assistant", "content": f"answer {turn}"},
        ]
    return history + [{"role": "user", "content": "final question"},
                      {"role": "assistant", "content": None, "tool_calls": [{"id": "f", "type": "function", "function": {"name": "get_reservation", "arguments": "{}"}}]},
                      {"role": "tool", "tool_call_id": "f", "content": json.dumps({"flights": list(range(50))})}]


def test_the_window_keeps_the_last_messages_and_never_cuts_the_final_user_turn():
    fitted = ContextPolicy(window=2).apply(call(1, long_conversation()))
    messages = json.loads(fitted["messages"])

    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]  # reached back to the user turn
    assert messages[1]["content"] == "final question"
    assert len(json.loads(ContextPolicy(window=0).apply(call(1, long_conversation()))["messages"])) == 28


def test_a_window_never_starts_on_a_tool_result_whose_call_was_cut():
    conversation = long_conversation()[:4] + [{"role": "user", "content": "last"}]
    roles = [m["role"] for m in json.loads(ContextPolicy(window=3).apply(call(1, conversation))["messages"])]

    assert roles == ["system", "assistant", "user"]


def test_tool_results_are_minified_and_long_lists_cut_with_a_marker():
    policy = ContextPolicy(list_items=3, tool_result_chars=40)

    assert policy.shorten(json.dumps({"flights": [1, 2, 3, 4, 5]})) == '{"flights":[1,2,3,"…2 more"]}'
    assert policy.shorten("plain text " * 10).endswith("…[70 characters cut]")


def test_the_smallest_window_within_the_margin_of_the_best_is_chosen():
    assert choose_window({2: 0.50, 4: 0.79, 8: 0.80, 0: 0.80}, margin=0.02) == 4
    assert choose_window({2: 0.5, 0: 0.9}, margin=0.02) == 0
    assert choose_window({2: 0.9, 0: 0.9}, margin=0.0) == 2


def test_a_call_fits_only_with_room_for_its_reply():
    assert fits(8000, 192, 8192) and not fits(8001, 192, 8192)


def test_a_window_covers_a_reply_only_if_it_keeps_every_value_the_reply_copies():
    def asking(user_id: str, later_turns: int) -> dict:
        history = [{"role": "user", "content": f"Hi, my user id is {user_id}."}]
        for turn in range(later_turns):
            history += [{"role": "assistant", "content": f"Noted, anything else? ({turn})"},
                        {"role": "user", "content": "Yes, my trip."}]
        reply = [{"id": "r", "name": "get_user_details", "arguments": {"user_id": user_id, "verbose": True}}]
        return {**call(1, history), "response_tool_calls": json.dumps(reply)}

    calls = [asking("<USER_ID_1>", 0), asking("<USER_ID_1>", 3)]  # the second gave its id six messages back

    assert window_coverage(calls, ContextPolicy(window=2)) == 0.5
    assert window_coverage(calls, ContextPolicy(window=8)) == 1.0
    assert window_coverage([{**calls[1], "response_tool_calls": "[]"}], ContextPolicy(window=2)) == 1.0
