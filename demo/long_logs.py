"""Seeded long logs of an airline customer-service agent, shaped like the real GPT-4o logs that motivated pruning.

Every call carries the airline's whole policy (about 1,300 tokens) and fourteen tools with full JSON schemas (about
2,800 tokens), identical but for the current time stamped into the policy. Each conversation is a transcript: the
customer gives a user id and a reservation, the agent looks up the user and the reservation (long JSON tool
results), answers from them, and where the customer wants a cancellation the policy allows, confirms and cancels.
One LLM call per assistant turn, so a conversation holds 3 to 5 calls, the later ones behind thousands of tokens.

They are as personal as real ones: names from many countries (spaCy's model misses most that are not English),
user ids made from them (`aarav_garcia_4821`), customers who give their name in lower case, replies that restate
the passenger list, and hand-overs to a human whose summary repeats the user id and name.

    python -m demo.long_logs logs/ --conversations 120
"""

from __future__ import annotations

import argparse
import json
import random
import string
import unicodedata
from datetime import datetime, timedelta, timezone
from pathlib import Path

from faker import Faker

_MODEL = "gpt-4o-2024-08-06"
_CABINS = ("basic_economy", "economy", "business")
_TIERS = ("regular", "silver", "gold")
_AIRPORTS = ("JFK", "LAX", "ORD", "SFO", "SEA", "BOS", "ATL", "DFW", "DEN", "MIA", "PHX", "IAH", "LAS", "MSP", "DTW")
_FREE_BAGS = {("regular", "basic_economy"): 0, ("regular", "economy"): 1, ("regular", "business"): 2,
              ("silver", "basic_economy"): 1, ("silver", "economy"): 2, ("silver", "business"): 3,
              ("gold", "basic_economy"): 2, ("gold", "economy"): 3, ("gold", "business"): 3}

_POLICY_SECTIONS = {
    "Domain basics": (
        "Each user has a profile with a user id, email, addresses, date of birth, payment methods, reservation "
        "numbers and a membership tier: regular, silver or gold.",
        "Each reservation has a reservation id, user id, trip type, flights, passengers, payment methods, created "
        "time, baggages and travel insurance information.",
        "Each flight has a flight number, an origin, a destination, a scheduled departure and arrival time in local "
        "time, and for each date a status: available, delayed, on time, flying, landed or cancelled.",
        "Payment methods are credit cards, gift cards and travel certificates; a certificate cannot be split and "
        "its remaining balance is not refundable.",
    ),
    "Before taking any action": (
        "You must first obtain the user id; never guess or look it up from a name alone.",
        "Before any action that updates the booking database (booking, modifying flights, editing baggage, "
        "upgrading cabin class, updating passengers or cancelling), list the action details and obtain explicit "
        "user confirmation (yes) to proceed.",
        "Do not provide information, knowledge or procedures not given by the user or the available tools, and do "
        "not give subjective recommendations or comments.",
        "Make at most one tool call at a time; if you make a tool call, do not respond to the user at the same "
        "time, and if you respond to the user, do not make a tool call.",
        "Deny requests that are against this policy, and transfer to a human agent only when the request cannot "
        "be handled within the scope of your actions.",
    ),
    "Book flight": (
        "The agent must first obtain the user id, then ask for the trip type, origin and destination.",
        "Passengers: each reservation can have at most five passengers; the agent needs the first name, last name "
        "and date of birth of each passenger, and all passengers must fly the same flights in the same cabin.",
        "Payment: each reservation can use at most one travel certificate, at most one credit card and at most "
        "three gift cards; the remaining amount of a travel certificate is not refundable.",
        "Checked bags: a regular member has 0 free checked bags per passenger in basic economy, 1 in economy and 2 "
        "in business; a silver member 1, 2 and 3; a gold member 2, 3 and 3. Each extra bag costs 50 dollars.",
        "Travel insurance: ask whether the user wants travel insurance, which costs 30 dollars per passenger and "
        "enables a full refund if the user needs to cancel for health or weather reasons.",
    ),
    "Modify flight": (
        "First the agent must obtain the user id and the reservation id.",
        "Change flights: basic economy flights cannot be modified. Other reservations can be modified without "
        "changing the origin, destination and trip type; some segments can be kept, but their prices are not "
        "updated to the current price.",
        "Change cabin: all reservations, including basic economy, can change cabin without changing the flights; "
        "the cabin must be the same across all flights in a reservation.",
        "Change baggage and insurance: the user can add but not remove checked bags, and cannot add insurance "
        "after the initial booking.",
        "Change passengers: the user can modify passengers but cannot change their number, not even a human "
        "agent can.",
        "Payment: if the flights are changed, the user needs to provide one gift card or credit card for the "
        "payment or refund; certificates cannot be used.",
    ),
    "Cancel flight": (
        "First the agent must obtain the user id, the reservation id and the reason for cancellation: change of "
        "plan, airline cancelled flight, or other reasons.",
        "All reservations can be cancelled within 24 hours of booking, or if the airline cancelled the flight.",
        "Otherwise, basic economy or economy flights can be cancelled only if travel insurance was bought and the "
        "condition is met; business flights can always be cancelled.",
        "The agent can only cancel the whole trip that is not flown; if any segment has already been used, the "
        "agent cannot help and must transfer to a human agent.",
        "The refund goes to the original payment methods within 5 to 7 business days.",
    ),
    "Refunds and compensation": (
        "Do not proactively offer compensation unless the user explicitly asks for one.",
        "Do not compensate if the user is a regular member with no travel insurance flying basic economy or "
        "economy.",
        "Always confirm the facts before offering compensation; only compensate if the membership is silver or "
        "gold, or the user has travel insurance, or flies business.",
        "If the user complains about cancelled flights, after confirming the facts, offer a certificate of 100 "
        "dollars times the number of passengers.",
        "If the user complains about delayed flights and wants to change or cancel the reservation, after "
        "confirming the facts and changing or cancelling, offer a certificate of 50 dollars times the number of "
        "passengers.",
    ),
}


def _schema(properties: dict, required: list[str] | None = None) -> dict:
    return {"type": "object", "properties": properties, "required": required if required is not None else list(properties)}


_ID = {"type": "string", "description": "The reservation id, such as '8JX2WO'."}
_USER = {"type": "string", "description": "The user id, such as 'sara_doe_496'."}
_PASSENGER = _schema({
    "first_name": {"type": "string", "description": "The first name of the passenger, such as 'Noah'."},
    "last_name": {"type": "string", "description": "The last name of the passenger, such as 'Brown'."},
    "dob": {"type": "string", "description": "The date of birth of the passenger in the format 'YYYY-MM-DD'."},
})
_FLIGHT = _schema({
    "flight_number": {"type": "string", "description": "Flight number, such as 'HAT001'."},
    "date": {"type": "string", "description": "The date for the flight in the format 'YYYY-MM-DD'."},
})
_PAYMENT = _schema({
    "payment_id": {"type": "string", "description": "The payment id stored in the user profile, such as "
                   "'credit_card_7815826', 'gift_card_7815826' or 'certificate_7815826'."},
    "amount": {"type": "number", "description": "The amount to be paid."},
})


def _tool(name: str, description: str, parameters: dict) -> dict:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


_TOOLS = [
    _tool("book_reservation", "Book a reservation for the user, once every detail is confirmed.", _schema({
        "user_id": _USER, "origin": {"type": "string", "description": "The IATA code of the origin city, such as 'SFO'."},
        "destination": {"type": "string", "description": "The IATA code of the destination city, such as 'JFK'."},
        "flight_type": {"type": "string", "enum": ["one_way", "round_trip"], "description": "The type of the trip."},
        "cabin": {"type": "string", "enum": list(_CABINS), "description": "The cabin class."},
        "flights": {"type": "array", "items": _FLIGHT, "description": "An array of objects containing details about each piece of flight."},
        "passengers": {"type": "array", "items": _PASSENGER, "description": "An array of objects containing details about each passenger."},
        "payment_methods": {"type": "array", "items": _PAYMENT, "description": "An array of objects containing details about each payment method."},
        "total_baggages": {"type": "integer", "description": "The total number of baggage items included in the reservation."},
        "nonfree_baggages": {"type": "integer", "description": "The number of non-free baggage items included in the reservation."},
        "insurance": {"type": "string", "enum": ["yes", "no"], "description": "Whether travel insurance is bought."},
    })),
    _tool("calculate", "Calculate the result of a mathematical expression.", _schema({
        "expression": {"type": "string", "description": "The mathematical expression to calculate, such as '2 + 2'. "
                       "The expression can contain numbers, operators (+, -, *, /), parentheses, and spaces."}})),
    _tool("cancel_reservation", "Cancel the whole reservation, once the user confirmed and the policy allows it.",
          _schema({"reservation_id": _ID})),
    _tool("get_reservation_details", "Get the details of a reservation: flights, passengers, cabin, payments, "
          "baggage and insurance.", _schema({"reservation_id": _ID})),
    _tool("get_user_details", "Get the details of a user, including their reservations, payment methods, saved "
          "passengers and membership tier.", _schema({"user_id": _USER})),
    _tool("list_all_airports", "List all airports and their cities.", _schema({})),
    _tool("search_direct_flight", "Search direct flights between two cities on a specific date.", _schema({
        "origin": {"type": "string", "description": "The origin city airport in three letters, such as 'JFK'."},
        "destination": {"type": "string", "description": "The destination city airport in three letters, such as 'LAX'."},
        "date": {"type": "string", "description": "The date of the flight in the format 'YYYY-MM-DD', such as '2024-01-01'."},
    })),
    _tool("search_onestop_flight", "Search one-stop flights between two cities on a specific date.", _schema({
        "origin": {"type": "string", "description": "The origin city airport in three letters, such as 'JFK'."},
        "destination": {"type": "string", "description": "The destination city airport in three letters, such as 'LAX'."},
        "date": {"type": "string", "description": "The date of the flight in the format 'YYYY-MM-DD', such as '2024-05-01'."},
    })),
    _tool("send_certificate", "Send a certificate to a user. Be careful!", _schema({
        "user_id": _USER, "amount": {"type": "number", "description": "Certificate amount to send."}})),
    _tool("think", "Use the tool to think about something. It will not obtain new information or change the "
          "database, but just append the thought to the log. Use it when complex reasoning is needed.",
          _schema({"thought": {"type": "string", "description": "A thought to think about."}})),
    _tool("transfer_to_human_agents", "Transfer the user to a human agent, with a summary of the user's issue. "
          "Only transfer if the user explicitly asks for a human agent, or the issue cannot be resolved within "
          "the scope of the available tools.", _schema({
              "summary": {"type": "string", "description": "A summary of the user's issue."}})),
    _tool("update_reservation_baggages", "Update the baggage information of a reservation.", _schema({
        "reservation_id": _ID,
        "total_baggages": {"type": "integer", "description": "The updated total number of baggage items included in the reservation."},
        "nonfree_baggages": {"type": "integer", "description": "The updated number of non-free baggage items included in the reservation."},
        "payment_id": {"type": "string", "description": "The payment id stored in the user profile, such as 'credit_card_7815826'."},
    })),
    _tool("update_reservation_flights", "Update the flight information of a reservation.", _schema({
        "reservation_id": _ID, "cabin": {"type": "string", "enum": list(_CABINS), "description": "The cabin class."},
        "flights": {"type": "array", "items": _FLIGHT, "description": "An array of objects containing details about "
                    "each piece of flight in the entire new reservation. Even if a flight segment is not changed, "
                    "it should still be included in the array."},
        "payment_id": {"type": "string", "description": "The payment id stored in the user profile, such as 'credit_card_7815826'."},
    })),
    _tool("update_reservation_passengers", "Update the passenger information of a reservation.", _schema({
        "reservation_id": _ID,
        "passengers": {"type": "array", "items": _PASSENGER, "description": "An array of objects containing details about each passenger."},
    })),
]


def policy(now: datetime) -> str:
    lines = ["# Airline agent policy", "", f"The current time is {now:%Y-%m-%d %H:%M:%S} EST.", "",
             "As an airline agent, you can help users book, modify, or cancel flight reservations."]
    for title, rules in _POLICY_SECTIONS.items():
        lines += ["", f"## {title}", ""] + [f"- {rule}" for rule in rules]
    return "\n".join(lines)


class _Airline:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fake = Faker(["en_US", "en_IN", "es_MX", "pt_BR", "de_DE", "it_IT", "fr_FR", "pl_PL", "vi_VN", "nl_NL"])
        self.fake.seed_instance(seed)

    def code(self, length: int = 6) -> str:
        return "".join(self.rng.choices(string.ascii_uppercase + string.digits, k=length))

    def user(self) -> dict:
        first, last = self.fake.first_name(), self.fake.last_name()
        payments = {f"credit_card_{self.rng.randrange(10**6, 10**7)}": {"source": "credit_card", "brand": self.rng.choice(("visa", "mastercard")),
                                                                       "last_four": f"{self.rng.randrange(10**4):04d}"}}
        for _ in range(self.rng.randint(0, 2)):
            payments[f"gift_card_{self.rng.randrange(10**6, 10**7)}"] = {"source": "gift_card", "amount": self.rng.randrange(20, 300)}
        return {
            "user_id": f"{_ascii(first)}_{_ascii(last)}_{self.rng.randrange(100, 9999)}",
            "name": {"first_name": first, "last_name": last},
            "address": {"address1": self.fake.street_address(), "city": self.fake.city(), "country": "USA",
                        "state": self.fake.state_abbr(), "zip": self.fake.zipcode()},
            "email": f"{_ascii(first)}.{_ascii(last)}{self.rng.randrange(100)}@example.com",
            "dob": self.fake.date_of_birth(minimum_age=20, maximum_age=80).isoformat(),
            "payment_methods": payments,
            "saved_passengers": [{"first_name": self.fake.first_name(), "last_name": last,
                                  "dob": self.fake.date_of_birth(minimum_age=2, maximum_age=80).isoformat()}
                                 for _ in range(self.rng.randint(0, 3))],
            "membership": self.rng.choice(_TIERS),
            "reservations": [self.code() for _ in range(self.rng.randint(3, 14))],
        }

    def reservation(self, user: dict, reservation_id: str, now: datetime) -> dict:
        rng = self.rng
        origin, destination = rng.sample(_AIRPORTS, 2)
        round_trip = rng.random() < 0.6
        day = now.date() + timedelta(days=rng.randint(3, 60))
        legs = [(origin, destination, day)] + ([(destination, origin, day + timedelta(days=rng.randint(2, 14)))] if round_trip else [])
        cabin = rng.choice(_CABINS)
        flights = [{"origin": o, "destination": d, "flight_number": f"HAT{rng.randrange(1, 300):03d}", "date": f"{when}",
                    "price": rng.randrange(60, 1800 if cabin == "business" else 600)} for o, d, when in legs]
        passengers = [{"first_name": user["name"]["first_name"], "last_name": user["name"]["last_name"], "dob": user["dob"]}]
        passengers += user["saved_passengers"][: rng.randint(0, len(user["saved_passengers"]))]
        total = sum(f["price"] for f in flights) * len(passengers)
        booked = now - (timedelta(hours=rng.randint(1, 23)) if rng.random() < 0.2 else timedelta(days=rng.randint(2, 90)))
        return {
            "reservation_id": reservation_id, "user_id": user["user_id"], "origin": origin, "destination": destination,
            "flight_type": "round_trip" if round_trip else "one_way", "cabin": cabin, "flights": flights,
            "passengers": passengers,
            "payment_history": [{"payment_id": next(iter(user["payment_methods"])), "amount": total}],
            "created_at": f"{booked:%Y-%m-%dT%H:%M:%S}",
            "total_baggages": rng.randint(0, 3), "nonfree_baggages": 0,
            "insurance": rng.choice(("yes", "no")),
        }


def _ascii(name: str) -> str:
    """"José María" -> "jose_maria": how systems make ids from names."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "_".join(plain.lower().replace("-", " ").split())


def _passenger_list(reservation: dict) -> str:
    return " ".join(f"- {p['first_name']} {p['last_name']}, DOB: {p['dob']}" for p in reservation["passengers"])


def _cancellable(reservation: dict, now: datetime) -> str:
    """Why the policy allows cancelling, or "" where it does not."""
    if now - datetime.fromisoformat(reservation["created_at"]) < timedelta(hours=24):
        return "it was booked within the last 24 hours"
    if reservation["cabin"] == "business":
        return "business reservations can always be cancelled"
    if reservation["insurance"] == "yes":
        return "it has travel insurance"
    return ""


def _trip(reservation: dict) -> str:
    flights = reservation["flights"]
    way = "round trip" if reservation["flight_type"] == "round_trip" else "one way"
    dates = " and ".join(f["date"] for f in flights)
    return (f"reservation {reservation['reservation_id']} is a {way} from {reservation['origin']} to "
            f"{reservation['destination']} in {reservation['cabin'].replace('_', ' ')} on {dates}, for "
            f"{len(reservation['passengers'])} passenger{'s' if len(reservation['passengers']) > 1 else ''}")


def _call(name: str, arguments: dict, rng: random.Random) -> tuple[dict, str]:
    call_id = "call_" + "".join(rng.choices(string.ascii_letters + string.digits, k=24))
    function = {"name": name, "arguments": json.dumps(arguments)}
    return {"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function", "function": function}]}, call_id


def _conversation(airline: _Airline, now: datetime) -> list[dict]:
    rng = airline.rng
    user = airline.user()
    reservation_id = rng.choice(user["reservations"])
    reservation = airline.reservation(user, reservation_id, now)
    wants_cancel = rng.random() < 0.5
    ask = (rng.choice(("I need to cancel my reservation {r}.", "Please cancel booking {r}, my plans changed.",
                       "Can you cancel reservation {r} for me?")) if wants_cancel else
           rng.choice(("Can you tell me the details of my reservation {r}?", "What flights are on reservation {r}?",
                       "I'd like to review booking {r} before my trip.")))
    first, last = user["name"]["first_name"], user["name"]["last_name"]
    greeting = rng.choice((
        f"Hi, my user id is {user['user_id']}. ",
        f"Hi, I'm {first} {last}, user id {user['user_id']}. ",
        f"hey this is {first.lower()} {last.lower()} ({user['user_id']}). ",
        f"Hello. {user['user_id']} here. ",
    ))
    messages = [{"role": "system", "content": policy(now)},
                {"role": "user", "content": greeting + ask.format(r=reservation_id)}]
    for name, arguments, result in (("get_user_details", {"user_id": user["user_id"]}, user),
                                    ("get_reservation_details", {"reservation_id": reservation_id}, reservation)):
        turn, call_id = _call(name, arguments, rng)
        messages += [turn, {"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)}]
    if not wants_cancel:
        messages.append({"role": "assistant", "content": f"Thanks, {first}. Your {_trip(reservation)}. Passengers: "
                         f"{_passenger_list(reservation)}. Anything else I can help with?"})
        if rng.random() < 0.4:
            messages.append({"role": "user", "content": f"Is {reservation['passengers'][-1]['first_name']} on it too? "
                             "And I want to talk to a person about a refund."})
            summary = (f"User {user['user_id']} ({first} {last}) asks about a refund on reservation {reservation_id}; "
                       f"passengers {', '.join(p['first_name'] + ' ' + p['last_name'] for p in reservation['passengers'])}.")
            turn, call_id = _call("transfer_to_human_agents", {"summary": summary}, rng)
            messages += [turn, {"role": "tool", "tool_call_id": call_id, "content": "Transfer successful"},
                         {"role": "assistant", "content": f"{first} {last}, I have passed you to a colleague."}]
        return messages
    reason = _cancellable(reservation, now)
    if not reason:
        messages.append({"role": "assistant", "content": f"I'm sorry, {first}: your {_trip(reservation)}, without travel "
                         "insurance and booked more than 24 hours ago, so under our policy it cannot be cancelled."})
        return messages
    messages += [
        {"role": "assistant", "content": f"Your {_trip(reservation)}: {_passenger_list(reservation)}. It can be "
         f"cancelled because {reason}; the refund goes to the original payment method in 5 to 7 business days. "
         "Shall I cancel it (yes/no)?"},
        {"role": "user", "content": rng.choice(("yes", "Yes please.", "yes, go ahead"))},
    ]
    turn, call_id = _call("cancel_reservation", {"reservation_id": reservation_id}, rng)
    messages += [turn, {"role": "tool", "tool_call_id": call_id, "content": json.dumps({**reservation, "status": "cancelled"})},
                 {"role": "assistant", "content": f"Done: reservation {reservation_id} is cancelled, {first}."}]
    return messages


def write_long_logs(folder: Path, conversations: int = 120, seed: int = 11, start: datetime = datetime(2026, 11, 2, tzinfo=timezone.utc),
                    days: int = 14) -> Path:
    """Write `conversations` transcripts to `folder/airline-transcripts.jsonl`; return its path."""
    airline = _Airline(seed)
    lines = []
    for _ in range(conversations):
        now = start + timedelta(seconds=airline.rng.randrange(days * 86_400))
        metadata = {"conversation_id": "conv_" + airline.code(20), "timestamp": f"{now:%Y-%m-%dT%H:%M:%SZ}", "model": _MODEL}
        lines.append((now, json.dumps({"messages": _conversation(airline, now.replace(tzinfo=None)), "tools": _TOOLS, "metadata": metadata})))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "airline-transcripts.jsonl"
    path.write_text("".join(line + "\n" for _, line in sorted(lines)))
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write long demo logs of an airline customer-service agent.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--conversations", type=int, default=120)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    print(write_long_logs(args.folder, args.conversations, args.seed))
