"""Seeded long logs of an airline customer-service agent, as varied as the real GPT-4o logs that motivated pruning.

Every call carries the airline's whole policy (about 1,200 tokens) and fourteen tools with full JSON schemas (about
2,300 tokens), identical but for the current time stamped into the policy. Each conversation is a transcript, one
LLM call per assistant turn, in which a customer asks for one to three things, drawn so that the replies come in about
the proportions of a real airline agent's logs: review a reservation or all upcoming trips, cancel (allowed or refused), change flights (search,
present options, price the difference, confirm, update), change cabin, add bags, change passengers, book (search,
passengers, extras, total, confirm, book), compensation for a cancelled or delayed flight, a question about baggage
or insurance, a hand-over to a human. Customers hold back their user id, forget or mistype the reservation id, push
back on a refusal and ask off-topic things. The agent's tool arguments come from what the customer said and what the
tools returned, as a real agent's do, and each job has several phrasings around its changing parts (names, cities,
dates, prices, flight numbers). A conversation holds 3 to about 25 calls (half of them 13 or more, one in twenty
over 25), the later ones behind thousands of tokens.

They are as personal as real ones: names from many countries (spaCy's model misses most that are not English),
user ids made from them (`aarav_garcia_4821`), customers who give their name in lower case, replies that restate
the passenger list, and hand-overs to a human whose summary repeats the user id and name. Everyone named is the
customer or one of their saved passengers, so the `get_user_details` results hold every personal value planted.

The generator knows the job of every assistant turn (`tool:update_reservation_flights`, `text:present_flight_options`,
...). `airline-jobs.json`, beside the transcripts, holds it per call under step 1's keys (`source_file`,
`source_line`, `turn`); its name is no log file's, so step 1 does not read it. `read_jobs` loads it.

    python -m demo.long_logs logs/ --conversations 120
"""

from __future__ import annotations

import argparse
import json
import random
import string
import unicodedata
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from faker import Faker

_MODEL = "gpt-4o-2024-08-06"
_TRANSCRIPTS = "airline-transcripts.jsonl"
_JOBS = "airline-jobs.json"  # not *.jsonl: step 1 must not take the answers for a log
_CABINS = ("basic_economy", "economy", "business")
_TIERS = ("regular", "silver", "gold")
_CITIES = {"ATL": "Atlanta", "BOS": "Boston", "CLT": "Charlotte", "DEN": "Denver", "DFW": "Dallas", "DTW": "Detroit",
           "IAH": "Houston", "JFK": "New York", "LAS": "Las Vegas", "LAX": "Los Angeles", "MCO": "Orlando",
           "MIA": "Miami", "MSP": "Minneapolis", "ORD": "Chicago", "PHL": "Philadelphia", "PHX": "Phoenix",
           "SEA": "Seattle", "SFO": "San Francisco"}
_AIRPORTS = tuple(_CITIES)
_FREE_BAGS = {("regular", "basic_economy"): 0, ("regular", "economy"): 1, ("regular", "business"): 2,
              ("silver", "basic_economy"): 1, ("silver", "economy"): 2, ("silver", "business"): 3,
              ("gold", "basic_economy"): 2, ("gold", "economy"): 3, ("gold", "business"): 3}
_FARES = {"basic_economy": (50, 200), "economy": (110, 480), "business": (380, 1900)}
_BAG_PRICE = 50
_INSURANCE_PRICE = 30

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




# Several phrasings of each reply, keyed by the job it does (or a variant of one); every phrasing can use {first}
# (the customer's first name) and {thanks} (an opener, often empty) besides the values the job passes
_REPLIES: dict[str, tuple[str, ...]] = {
    "ask_user_id": (
        "I'd be glad to help you {topic}. Could you please provide your user id first?",
        "Sure, I can help with that. To get started, I need your user id.",
        "Happy to help you {topic}. What is your user id? I need it to pull up your profile.",
        "Before I can {topic}, I need to verify your account. Please share your user id.",
        "Of course. Could you tell me your user id so I can look up your account?",
    ),
    "ask_user_id_again": (
        "I'm sorry, but I can't look up an account by {given}. I need your user id, which is usually your name "
        "followed by a number. Could you find it in your profile?",
        "Thanks, but to access your account I need the user id itself, not your {given}. Do you have it?",
        "Unfortunately I can only identify you by your user id. Could you check your account settings for it?",
    ),
    "ask_reservation_id": (
        "{thanks}Which reservation is this about? Please give me its reservation id.",
        "Thank you, {first}. To {topic}, I'll need the reservation id. Do you have it?",
        "I have your profile. Which reservation would you like help with? The reservation id has six characters.",
        "{thanks}Could you share the reservation id so I can {topic}?",
    ),
    "reservation_not_found": (
        "I couldn't find a reservation with the id {shown}. Could you double-check it?",
        "It looks like {shown} isn't a valid reservation id. Could you check it again? It should be six characters.",
        "Sorry, no reservation matches {shown}. Could you please confirm the reservation id?",
        "The system returned no reservation for {shown}. Is there a typo in the id?",
    ),
    "ask_cancel_reason": (
        "I see your {trip}. May I ask why you want to cancel: a change of plan, a flight cancelled by the airline, or "
        "another reason?",
        "{thanks}Before I check whether it can be cancelled, could you tell me the reason for the cancellation?",
        "I found {rid}. What is the reason for cancelling: change of plan, airline cancellation, or something else "
        "such as health or weather?",
    ),
    "answer_reservation": (
        "{thanks}Your {trip}. Passengers:\n{passengers}\nIt has {bags} checked bag(s) and {insurance}. Anything else "
        "I can help with?",
        "Here are the details of reservation {rid}:\n- Trip: {way} from {origin} to {destination}\n- Flights: "
        "{flights}\n- Cabin: {cabin}\n- Passengers:\n{passengers}\n- Checked bags: {bags}\n- Travel insurance: "
        "{insured}\nIs there anything else you'd like to know?",
        "Reservation {rid} is a {way} in {cabin}: {flights}. It's booked for {names}, with {bags} checked bag(s) and "
        "{insurance}.",
        "I've pulled up {rid}. You're flying {flights} in {cabin}, and the passengers are:\n{passengers}\nLet me "
        "know if you need anything changed.",
    ),
    "answer_trips": (
        "{thanks}Here are your reservations:\n{trips}\nWould you like to do anything with one of them?",
        "I found these reservations on your profile:\n{trips}\nLet me know if you need help with any of them.",
        "You have {count} trips on file:\n{trips}",
    ),
    "answer_on_board": (
        "Yes, {name} is on reservation {rid} (date of birth {dob}).",
        "{name} is one of the passengers on {rid}, yes. The full list is {names}.",
    ),
    "answer_not_on_board": (
        "No, {name} is not on reservation {rid}; it is booked for {names}.",
        "I don't see {name} on this reservation. The passengers are {names}.",
    ),
    "answer_bags": (
        "Reservation {rid} has {bags} checked bag(s), {nonfree} of them paid.",
        "You have {bags} checked bag(s) on this booking.",
        "There are {bags} checked bags on {rid} at the moment.",
    ),
    "answer_paid": (
        "You paid {amount} for reservation {rid}, with your {method}.",
        "The booking was paid with your {method}: {amount} in total.",
    ),
    "present_flight_options": (
        "{thanks}Here are the available flights from {origin} to {destination} on {date}:\n{options}\nWhich one "
        "would you like?",
        "I found these options for {date} in {cabin}:\n{options}\nLet me know which flight you prefer.",
        "There are {count} options from {origin} to {destination} on {date}:\n{options}\nWhich one works for you?",
        "On {date} you could take:\n{options}\nPrices are per passenger in {cabin}. Which would you like?",
    ),
    "ask_payment_method": (
        "The {purpose} comes to {amount}. Which payment method would you like to use? On file you have:\n{methods}",
        "{thanks}How would you like to pay the {amount}? You can use:\n{methods}",
        "Which of your payment methods should I use for the {amount}?\n{methods}",
    ),
    "confirm_cancel": (
        "Here are the details:\n- Reservation: {rid} ({route})\n- Flights: {flights}\n- Passengers:\n{passengers}\n"
        "- Refund: {refund} to your {method}, within 5 to 7 business days\nIt can be cancelled because {why}. Shall "
        "I cancel it (yes/no)?",
        "Your {trip} can be cancelled, since {why}. The refund of {refund} goes back to your {method} in 5 to 7 "
        "business days. Do you want me to proceed? Please answer yes or no.",
        "{thanks}I can cancel reservation {rid} because {why}. Passengers: {names}. You would get {refund} back on "
        "your {method}. Please confirm with 'yes' to proceed.",
    ),
    "confirm_flights": (
        "To confirm, I'll change reservation {rid} to these flights in {cabin}:\n{flights}\nThe difference for "
        "{count} passenger(s) is {difference}, {charged} your {method}. Shall I proceed (yes/no)?",
        "Here's the change: {old} becomes {new}. The cabin stays {cabin}, and the fare difference is {difference} "
        "({charged} your {method}). Do you confirm?",
        "{thanks}The updated itinerary for {rid} would be:\n{flights}\nPrice difference: {difference}, {charged} "
        "your {method}. Would you like me to go ahead? Please reply yes to confirm.",
    ),
    "confirm_cabin": (
        "Changing reservation {rid} from {old} to {new} for {count} passenger(s) on {flights} makes a difference of "
        "{difference}, {charged} your {method}. Do you want me to proceed (yes/no)?",
        "{thanks}Here is the cabin change:\n- Reservation: {rid}\n- Cabin: {old} to {new}\n- Flights: {flights}\n- "
        "Price difference: {difference}\n- Payment: your {method}\nShall I go ahead?",
        "The {new} fare on your flights is {difference} {more} than what you paid, for all {count} passenger(s). "
        "It would be {charged} your {method}. Confirm with yes and I'll make the change.",
    ),
    "confirm_bags": (
        "As a {tier} member in {cabin}, each passenger has {free_each} free checked bag(s), {free} in all. Going "
        "from {before} to {after} bags means {paid} paid bag(s), {cost} charged to your {method}. Shall I add them "
        "(yes/no)?",
        "{thanks}To confirm: reservation {rid} goes to {after} checked bags, of which {nonfree} are not free. The "
        "cost is {cost}, paid with your {method}. Do you want me to proceed?",
        "Here's what I'll do: add {added} checked bag(s) to {rid} (total {after}). With your {tier} status in "
        "{cabin}, that costs {cost} on your {method}. Please confirm with yes.",
    ),
    "confirm_passengers": (
        "I'll update the passengers on reservation {rid} to:\n{passengers}\nThe number of passengers stays {count}. "
        "Shall I proceed (yes/no)?",
        "{thanks}Here is the new passenger list for {rid}:\n{passengers}\nDo you confirm this change?",
        "To confirm, {old} will be replaced by {new} on {rid}, so the passengers will be {names}. Is that correct?",
    ),
    "confirm_booking": (
        "Here are the booking details:\n- Trip: {way} from {origin} to {destination}\n- Flights: {flights}\n- "
        "Cabin: {cabin}\n- Passengers:\n{passengers}\n- Checked bags: {bags} ({nonfree} paid)\n- Travel insurance: "
        "{insured}\n- Total: {total}, paid with your {method}\nShall I book it (yes/no)?",
        "{thanks}I'm ready to book the {way} {origin} to {destination} on {flights} in {cabin} for {names}. With "
        "{bags} checked bag(s) and {insurance}, the total is {total} on your {method}. Do you confirm?",
        "To confirm the reservation: {flights}, {cabin}, passengers {names}, {bags} bag(s), insurance: {insured}. "
        "Total {total}, charged to your {method}. Please reply yes to proceed.",
    ),
    "offer_certificate": (
        "I'm sorry about the {what} flight {number} on {date}. Since {why}, I can offer you a travel certificate of "
        "{amount} ({per} for each of the {count} passenger(s)). Would you like me to send it?",
        "{thanks}I've confirmed that {number} was {what}. As {why}, you are eligible for a {amount} certificate. "
        "Shall I issue it to your account?",
        "I apologize for the {what} flight. Because {why}, I can send a certificate worth {amount} to your profile. "
        "Do you accept?",
    ),
    "done_cancel": (
        "Reservation {rid} has been cancelled. The refund of {refund} will reach your {method} within 5 to 7 "
        "business days. Is there anything else I can help with?",
        "Done, {first}: {rid} is cancelled and {refund} is on its way back to your {method}.",
        "{thanks}Your reservation {rid} is now cancelled. You'll see the refund in 5 to 7 business days.",
    ),
    "done_flights": (
        "Your reservation {rid} now has these flights:\n{flights}\n{difference} was {charged} your {method}. Anything "
        "else?",
        "All set, {first}! {rid} is updated to {new}. Is there anything else I can do for you?",
        "{thanks}The change is done: you're now on {new}, and the difference of {difference} was {charged} your "
        "{method}.",
    ),
    "done_cabin": (
        "Reservation {rid} is now in {new}. {difference} was {charged} your {method}.",
        "Done! Your flights on {rid} are now {new} for all passengers. Anything else?",
        "{thanks}Your cabin has been changed to {new}.",
    ),
    "done_bags": (
        "Done: reservation {rid} now has {after} checked bags. {cost} was charged to your {method}.",
        "{thanks}I've added the bag(s). You now have {after} checked bags on {rid}.",
        "Your baggage is updated, {first}: {after} checked bags in total.",
    ),
    "done_passengers": (
        "The passengers on {rid} are updated: {names}.",
        "{thanks}Done. {new} now replaces {old} on reservation {rid}.",
        "All set, the reservation now lists:\n{passengers}",
    ),
    "done_booking": (
        "Your reservation is booked! The reservation id is {rid}. {total} was charged to your {method}. Have a great "
        "trip, {first}!",
        "{thanks}Booking confirmed: {rid}, {way} from {origin} to {destination} for {names}. Anything else?",
        "Done. Your new reservation {rid} is confirmed, and the confirmation has been sent to your e-mail.",
    ),
    "done_certificate": (
        "I've sent a certificate of {amount} to your account. You can use it on your next booking.",
        "{thanks}The {amount} certificate is now in your profile.",
        "Done, {first}: a travel certificate worth {amount} has been added to your payment methods.",
    ),
    "explain_baggage": (
        "As a {tier} member flying {cabin}, each passenger gets {free_each} free checked bag(s); with {count} "
        "passenger(s) on {rid} that's {free} free bags. Each extra bag is $50. You currently have {bags}.",
        "{thanks}Your allowance on {rid} is {free_each} free checked bag(s) per passenger ({tier} member, {cabin}), "
        "so {free} in total. Bags beyond that cost $50 each.",
        "For {cabin} and {tier} status the policy gives {free_each} free bag(s) per passenger. Reservation {rid} has "
        "{count} passenger(s), so {free} free bags; any more are $50 each.",
    ),
    "explain_insurance_bought": (
        "Reservation {rid} already has travel insurance: if you need to cancel for health or weather reasons, you "
        "get a full refund.",
        "{thanks}You bought travel insurance on {rid}, so a cancellation for health or weather reasons is fully "
        "refunded.",
    ),
    "explain_insurance_missing": (
        "I'm sorry, travel insurance can only be bought when booking, so it can't be added to {rid} now. It costs "
        "$30 per passenger and gives a full refund for cancellations due to health or weather.",
        "{thanks}Unfortunately insurance cannot be added after the initial booking. Reservation {rid} doesn't have "
        "it; you can choose it on your next booking ($30 per passenger).",
        "Insurance has to be purchased at booking time, so I can't add it to {rid}. For future trips it's $30 per "
        "passenger and covers cancellations for health or weather reasons.",
    ),
    "refuse_cancel": (
        "I'm sorry, {first}, but your {trip} can't be cancelled: it's in {cabin} without travel insurance and was "
        "booked more than 24 hours ago, and the reason is {reason}.",
        "{thanks}Under our policy, {rid} cannot be cancelled for {reason}: it was booked on {booked}, has no travel "
        "insurance and is not in business class.",
        "Unfortunately I can't cancel this reservation. Cancellation is allowed within 24 hours of booking, when the "
        "airline cancels the flight, in business, or with insurance for health or weather reasons, and {rid} meets "
        "none of these.",
    ),
    "refuse_basic_economy": (
        "I'm sorry, but {rid} is in basic economy, and basic economy flights cannot be modified. You could change "
        "the cabin first, which is allowed.",
        "{thanks}Unfortunately basic economy reservations can't have their flights changed. Your {trip}.",
        "Reservation {rid} is basic economy, so under our policy I can't change its flights. Upgrading the cabin is "
        "possible if you'd like.",
    ),
    "refuse_remove_bags": (
        "I'm sorry, checked bags can be added but not removed from a reservation.",
        "{thanks}Unfortunately our policy doesn't allow removing checked bags once they're on the booking.",
    ),
    "refuse_passenger_count": (
        "I'm sorry, the number of passengers on a reservation can't be changed, not even by a human agent. You can "
        "make a separate booking for {name}.",
        "{thanks}Adding a passenger to {rid} isn't possible: the number of passengers is fixed at {count}. I can "
        "book a new reservation for {name} if you like.",
    ),
    "refuse_compensation": (
        "I'm sorry about the {what} flight, {first}. As a {tier} member without travel insurance flying {cabin}, "
        "you're not eligible for compensation under our policy.",
        "{thanks}I've checked {number} on {date}: it was {what}. Unfortunately compensation is only available to "
        "silver and gold members, business passengers or travellers with insurance, so I can't offer one here.",
    ),
    "refuse_again": (
        "I understand, but I'm not able to make an exception to the policy.",
        "I'm sorry, {first}, the policy doesn't allow it, and I can't override it.",
        "I hear you, and I apologize. However, the rules apply to all reservations, so my answer has to stay the same.",
    ),
    "decline_off_topic": (
        "I'm sorry, I can only help with your flight reservations: booking, changes, cancellations, baggage and "
        "compensation.",
        "{thanks}That's outside what I can help with here. Is there anything about your reservations I can do?",
        "Unfortunately I don't have information about that. I can help with bookings, flight changes, baggage and "
        "cancellations.",
    ),
    "transfer_done": (
        "YOU ARE BEING TRANSFERRED TO A HUMAN AGENT. PLEASE HOLD ON.",
        "I've passed your request to a human agent, {first}. They will be with you shortly.",
        "{thanks}I'm transferring you to a colleague who can help with this. Please hold.",
    ),
    "goodbye": (
        "You're welcome, {first}! Have a great trip.",
        "Glad I could help. Have a nice day!",
        "Thank you for contacting us, {first}. Safe travels!",
        "You're welcome. If you need anything else, just reach out. Goodbye!",
    ),
    "ask_trip_details": (
        "I can help you book that. Where will you be flying from, is it one way or a round trip, and on which "
        "date(s)?",
        "{thanks}Could you tell me the origin, the travel date and whether you need a return flight?",
        "Sure! What's your departure city and date, and is this one way or round trip?",
    ),
    "ask_new_date": (
        "I see your {trip}. Which date would you like to move the {leg} to?",
        "{thanks}Which flight do you want to change, and to what date?",
        "Got it. What new date would you like for the {leg} from {origin} to {destination}?",
    ),
    "ask_passenger_details": (
        "Who will be travelling? I need the first name, last name and date of birth of each passenger.",
        "{thanks}Please give me the passengers' full names and dates of birth. You can also use the saved "
        "passengers in your profile.",
        "How many passengers, and what are their names and dates of birth?",
    ),
    "ask_replacement": (
        "Who will travel instead of {old}? I need their first name, last name and date of birth.",
        "{thanks}Please give me the full name and date of birth of the new passenger.",
    ),
    "ask_booking_extras": (
        "Would you like travel insurance for $30 per passenger? How many checked bags will you have? And which "
        "payment method would you like to use:\n{methods}",
        "{thanks}A few more details: do you want travel insurance ($30 per passenger, full refund for health or "
        "weather cancellations), how many checked bags, and how will you pay?\n{methods}",
        "Almost done. Insurance (yes/no, $30 each)? Number of checked bags? Payment method, one of:\n{methods}",
    ),
}


# What customers say, where the words vary but the meaning does not
_YES = ("yes", "Yes please.", "yes, go ahead", "Yes, that's correct.", "ok yes", "Yes, proceed.", "Sounds good, yes.")
_THEN = ("Also, {request}", "One more thing. {request}", "Thanks. While I have you: {request}", "Great. {request}",
         "ok. another question, {request}")
_REASONS = {
    "change_of_plan": ("My plans changed.", "change of plans", "I just can't make it anymore."),
    "airline_cancelled": ("The airline cancelled my flight.", "you guys cancelled the flight"),
    "health": ("I'm sick and can't travel.", "for health reasons, my doctor says I shouldn't fly"),
    "weather": ("There's a storm coming and I don't want to fly.", "the weather, there's a hurricane warning"),
    "other": ("Personal reasons.", "I found a cheaper option elsewhere."),
}
_OFF_TOPIC = ("Can you recommend a good hotel in {city}?", "What's the weather going to be like in {city}?",
              "Could you book me a rental car too?", "Do you know a good restaurant near the {code} airport?",
              "Can you help me with my visa application?", "what's the best way to get downtown from {code}?")
# What no tool can do, as the customer says it and as a hand-over summary says it
_OUT_OF_SCOPE = {"a refund for a flight I already flew": "a refund for a flight already flown",
                 "a bag that was lost on my last trip": "a bag lost on the last trip",
                 "a charge on my card I don't recognise": "a card charge the user does not recognise",
                 "changing the name on my ticket after my marriage": "a legal name change on a ticket",
                 "a complaint about the crew on my last flight": "a complaint about the crew",
                 "special assistance with a wheelchair": "wheelchair assistance"}


class _Airline:
    """The airline's data, all drawn from one seed: customers, their reservations, the flights on offer."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fake = Faker(["en_US", "en_IN", "es_MX", "pt_BR", "de_DE", "it_IT", "fr_FR", "pl_PL", "vi_VN", "nl_NL"])
        self.fake.seed_instance(seed)
        # Faker makes its Italian city list from a set, whose order follows Python's hash seed: sorted, the same seed
        # writes the same logs in every process
        for provider in self.fake["it_IT"].providers:
            if isinstance(getattr(provider, "cities", None), list):
                provider.cities = sorted(provider.cities)

    def code(self, length: int = 6) -> str:
        return "".join(self.rng.choices(string.ascii_uppercase + string.digits, k=length))

    def user(self) -> dict:
        rng = self.rng
        first, last = self.fake.first_name(), self.fake.last_name()
        payments = {f"credit_card_{rng.randrange(10**6, 10**7)}": {"source": "credit_card", "brand": rng.choice(("visa", "mastercard")),
                                                                  "last_four": f"{rng.randrange(10**4):04d}"}}
        for _ in range(rng.randint(0, 2)):
            payments[f"gift_card_{rng.randrange(10**6, 10**7)}"] = {"source": "gift_card", "amount": rng.randrange(20, 600)}
        if rng.random() < 0.3:
            payments[f"certificate_{rng.randrange(10**6, 10**7)}"] = {"source": "certificate", "amount": rng.choice((100, 150, 250, 500))}
        return {
            "user_id": f"{_ascii(first)}_{_ascii(last)}_{rng.randrange(100, 9999)}",
            "name": {"first_name": first, "last_name": last},
            "address": {"address1": self.fake.street_address(), "city": self.fake.city(), "country": "USA",
                        "state": self.fake.state_abbr(), "zip": self.fake.zipcode()},
            "email": f"{_ascii(first)}.{_ascii(last)}{rng.randrange(100)}@example.com",
            "dob": self.fake.date_of_birth(minimum_age=20, maximum_age=80).isoformat(),
            "payment_methods": payments,
            "saved_passengers": [{"first_name": self.fake.first_name(), "last_name": rng.choice((last, self.fake.last_name())),
                                  "dob": self.fake.date_of_birth(minimum_age=2, maximum_age=80).isoformat()}
                                 for _ in range(rng.randint(0, 3))],
            "membership": rng.choice(_TIERS),
            "reservations": [self.code() for _ in range(rng.randint(2, 9))],
        }

    def reservation(self, user: dict, reservation_id: str, now: datetime, days: tuple[int, int] = (3, 60)) -> dict:
        """A reservation of `user`'s whose first flight is `days` from now."""
        rng = self.rng
        origin, destination = rng.sample(_AIRPORTS, 2)
        round_trip = rng.random() < 0.6
        day = now.date() + timedelta(days=rng.randint(*days))
        legs = [(origin, destination, day)] + ([(destination, origin, day + timedelta(days=rng.randint(2, 14)))] if round_trip else [])
        cabin = rng.choice(_CABINS)
        flights = [{"origin": o, "destination": d, "flight_number": self.flight_number(), "date": f"{when}",
                    "price": rng.randrange(*_FARES[cabin])} for o, d, when in legs]
        passengers = [{"first_name": user["name"]["first_name"], "last_name": user["name"]["last_name"], "dob": user["dob"]}]
        passengers += user["saved_passengers"][: rng.randint(0, len(user["saved_passengers"]))]
        insurance = rng.choice(("yes", "no"))
        paid = sum(f["price"] for f in flights) * len(passengers) + (_INSURANCE_PRICE * len(passengers) if insurance == "yes" else 0)
        booked = now - (timedelta(hours=rng.randint(1, 23)) if rng.random() < 0.2 else timedelta(days=rng.randint(2, 90)))
        bags = rng.randint(0, 2 * len(passengers))
        return {
            "reservation_id": reservation_id, "user_id": user["user_id"], "origin": origin, "destination": destination,
            "flight_type": "round_trip" if round_trip else "one_way", "cabin": cabin, "flights": flights,
            "passengers": passengers,
            "payment_history": [{"payment_id": rng.choice([p for p in user["payment_methods"] if not p.startswith("certificate")]),
                                 "amount": paid}],
            "created_at": f"{booked:%Y-%m-%dT%H:%M:%S}",
            "total_baggages": bags, "nonfree_baggages": max(0, bags - _FREE_BAGS[user["membership"], cabin] * len(passengers)),
            "insurance": insurance,
        }

    def flight_number(self) -> str:
        return f"HAT{self.rng.randrange(1, 300):03d}"

    def flight(self, origin: str, destination: str, departs: int, status: str = "available") -> dict:
        """A flight as the search tools return it, leaving at hour `departs`."""
        rng = self.rng
        arrives = departs + rng.randint(1, 6)
        return {"flight_number": self.flight_number(), "origin": origin, "destination": destination,
                "scheduled_departure_time_est": f"{departs:02d}:00:00",
                "scheduled_arrival_time_est": f"{arrives % 24:02d}:{rng.choice((0, 30)):02d}:00" + ("+1" if arrives >= 24 else ""),
                "status": status, "available_seats": {c: rng.randint(3, 20) for c in _CABINS},
                "prices": {c: rng.randrange(*_FARES[c]) for c in _CABINS}}

    def direct_flights(self, origin: str, destination: str, count: int) -> list[dict]:
        return [self.flight(origin, destination, hour) for hour in sorted(self.rng.sample(range(5, 22), count))]

    def onestop_flights(self, origin: str, destination: str, day: date, count: int) -> list[list[dict]]:
        options = []
        for hour in sorted(self.rng.sample(range(5, 16), count)):
            via = self.rng.choice([a for a in _AIRPORTS if a not in (origin, destination)])
            first = self.flight(origin, via, hour)
            landed = int(first["scheduled_arrival_time_est"][:2])  # before midnight: it left by 15:00 and flies at most 6 h
            second = self.flight(via, destination, min(23, landed + self.rng.randint(1, 2)))
            options.append([{**first, "date": f"{day}"}, {**second, "date": f"{day}"}])
        return options


def _ascii(name: str) -> str:
    """"José María" -> "jose_maria": how systems make ids from names."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "_".join(plain.lower().replace("-", " ").split())


# --- how the agent writes things out ------------------------------------------------------------------------------


def _money(amount: float) -> str:
    return f"${amount:,.0f}" if amount == int(amount) else f"${amount:,.2f}"


def _cabin(cabin: str) -> str:
    return cabin.replace("_", " ")


def _name(person: dict) -> str:
    return f"{person['first_name']} {person['last_name']}"


def _names(people: list[dict]) -> str:
    names = [_name(p) for p in people]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _passenger_list(people: list[dict]) -> str:
    return "\n".join(f"- {_name(p)}, DOB: {p['dob']}" for p in people)


def _flights(flights: list[dict]) -> str:
    return ", ".join(f"{f['flight_number']} {f['origin']}→{f['destination']} on {f['date']}" for f in flights)


def _trip(reservation: dict) -> str:
    way = "round trip" if reservation["flight_type"] == "round_trip" else "one way"
    dates = " and ".join(f["date"] for f in reservation["flights"])
    count = len(reservation["passengers"])
    return (f"reservation {reservation['reservation_id']} is a {way} from {reservation['origin']} to "
            f"{reservation['destination']} in {_cabin(reservation['cabin'])} on {dates}, for {count} "
            f"passenger{'s' if count > 1 else ''}")


def _details(reservation: dict) -> dict:
    """The values a reply about `reservation` may name."""
    insured = reservation["insurance"]
    return {"rid": reservation["reservation_id"], "trip": _trip(reservation), "origin": reservation["origin"],
            "destination": reservation["destination"], "route": f"{reservation['origin']}→{reservation['destination']}",
            "way": reservation["flight_type"].replace("_", " "), "cabin": _cabin(reservation["cabin"]),
            "flights": _flights(reservation["flights"]), "passengers": _passenger_list(reservation["passengers"]),
            "names": _names(reservation["passengers"]), "count": len(reservation["passengers"]),
            "bags": reservation["total_baggages"], "insured": insured,
            "insurance": "travel insurance" if insured == "yes" else "no travel insurance"}


def _option_lines(options: list[list[dict]], cabin: str, style: int) -> str:
    """Flight options, numbered, each a list of legs, priced per passenger in `cabin`, in one of three layouts."""
    lines = []
    for number, legs in enumerate(options, start=1):
        price = _money(sum(leg["prices"][cabin] for leg in legs))
        hops = ", then ".join(f"{leg['flight_number']} {leg['origin']}→{leg['destination']} {leg['scheduled_departure_time_est'][:5]}–"
                              f"{leg['scheduled_arrival_time_est'][:5]}" for leg in legs)
        if style == 0:
            lines.append(f"{number}. {hops}: {price}")
        elif style == 1:
            stops = "nonstop" if len(legs) == 1 else f"1 stop in {legs[0]['destination']}"
            lines.append(f"- {legs[0]['flight_number']}, departs {legs[0]['scheduled_departure_time_est'][:5]}, "
                         f"arrives {legs[-1]['scheduled_arrival_time_est'][:5]} ({stops}), {price} per person")
        else:
            lines.append(f"Option {number}: {hops} ({price})")
    return "\n".join(lines)


def _method(user: dict, payment_id: str) -> str:
    method = user["payment_methods"][payment_id]
    if method["source"] == "credit_card":
        return f"{method['brand'].title()} ending in {method['last_four']}"
    return f"{method['source'].replace('_', ' ')} {payment_id} (balance {_money(method['amount'])})"


def _ref(shown: str | None) -> str:
    return f" {shown}" if shown else ""


def _cancellable(reservation: dict, now: datetime, reason: str) -> str:
    """Why the policy allows cancelling, or "" where it does not."""
    if now - datetime.fromisoformat(reservation["created_at"]) < timedelta(hours=24):
        return "it was booked within the last 24 hours"
    if reason == "airline_cancelled":
        return "the airline cancelled the flight"
    if reservation["cabin"] == "business":
        return "business reservations can always be cancelled"
    if reservation["insurance"] == "yes" and reason in ("health", "weather"):
        return f"it has travel insurance and the reason is {reason}"
    return ""


# --- one conversation ---------------------------------------------------------------------------------------------


class _Chat:
    """One conversation as it is written: its messages, and the job of each assistant turn."""

    def __init__(self, airline: _Airline, now: datetime) -> None:
        self.airline, self.rng, self.now = airline, airline.rng, now
        self.user = airline.user()
        self.first = self.user["name"]["first_name"]
        self.messages: list[dict] = [{"role": "system", "content": policy(now)}]
        self.jobs: list[str] = []
        self.flows: list[str] = []
        self.identified = self.transferred = False
        self.seen: dict[str, dict] = {}  # reservations as the agent has read them, by id

    def customer(self, phrasings: tuple[str, ...], **values) -> None:
        self.messages.append({"role": "user", "content": self.rng.choice(phrasings).format(**values)})

    def say(self, job: str, phrasing: str | None = None, **values) -> None:
        """A text reply to the customer doing `job`, in one of the phrasings of `phrasing` (default: the job's)."""
        thanks = self.rng.choice(("", "", "Thank you. ", f"Thanks, {self.first}. ", "Got it. ", "Alright. "))
        text = self.rng.choice(_REPLIES[phrasing or job]).format(first=self.first, thanks=thanks, **values)
        self.messages.append({"role": "assistant", "content": text})
        self.jobs.append(f"text:{job}")

    def call(self, name: str, arguments: dict, result) -> None:
        call_id = "call_" + "".join(self.rng.choices(string.ascii_letters + string.digits, k=24))
        function = {"name": name, "arguments": json.dumps(arguments)}
        self.messages += [{"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function", "function": function}]},
                          {"role": "tool", "tool_call_id": call_id, "content": result if isinstance(result, str) else json.dumps(result)}]
        self.jobs.append(f"tool:{name}")

    def calculate(self, expression: str, value: float) -> None:
        """The agent works a price out with the `calculate` tool, as the real one does rather than in its head."""
        self.call("calculate", {"expression": expression}, str(round(float(value), 2)))

    def think(self, thought: str) -> None:
        """Sometimes the agent reasons aloud with the `think` tool before a decision the policy governs."""
        if self.rng.random() < 0.4:
            self.call("think", {"thought": thought}, "")

    def request(self, text: str, topic: str) -> None:
        """The customer asks for something; in their first message the agent must first learn who they are."""
        if self.identified:
            self.customer(_THEN, request=text)
            return
        user, rng = self.user, self.rng
        first, last, user_id = self.first, user["name"]["last_name"], user["user_id"]
        if rng.random() < 0.6:
            self.customer((f"Hi, my user id is {user_id}. {{text}}", f"Hi, I'm {first} {last}, user id {user_id}. {{text}}",
                           f"hey this is {first.lower()} {last.lower()} ({user_id}). {{text}}", f"Hello. {user_id} here. {{text}}",
                           f"{{text}} My user ID is {user_id}."), text=text)
        else:
            self.customer(("Hi! {text}", f"Hello, this is {first} {last}. {{text}}", f"hi im {first.lower()} {{text}}", "{text}"),
                          text=text)
            self.say("ask_user_id", topic=topic)
            if rng.random() < 0.3:
                given = rng.choice(("e-mail", "name"))
                self.customer((f"I don't remember it. My email is {user['email']}.",) if given == "e-mail" else
                              (f"Can't you find me by name? I'm {first} {last}.", f"it's under {first.lower()} {last.lower()}"))
                self.say("ask_user_id", "ask_user_id_again", given=given)
            self.customer(("Sure, my user ID is {id}.", "It's {id}", "{id}", "ok found it: {id}", "user id: {id}"), id=user_id)
        self.call("get_user_details", {"user_id": user_id}, user)
        self.identified = True

    def reservation(self, days: tuple[int, int] = (3, 60)) -> dict:
        """One of the customer's reservations the agent has not read yet, made up with its first flight `days` away."""
        unseen = [r for r in self.user["reservations"][:5] if r not in self.seen] or [self.airline.code()]
        return self.airline.reservation(self.user, self.rng.choice(unseen), self.now, days)

    def mention(self, reservation: dict) -> str | None:
        """The reservation id as the customer types it in their request: often not at all, sometimes mistyped."""
        if self.rng.random() < 0.5:
            return None
        return self._as_typed(reservation["reservation_id"])

    def _as_typed(self, reservation_id: str) -> str:
        """The id, or now and then the id with one character wrong."""
        if self.rng.random() < 0.12:
            at = self.rng.randrange(6)
            wrong = self.rng.choice([c for c in string.ascii_uppercase + string.digits if c != reservation_id[at]])
            return reservation_id[:at] + wrong + reservation_id[at + 1:]
        return reservation_id

    def find(self, reservation: dict, shown: str | None, topic: str) -> None:
        """The agent reads the reservation the customer means: by the id they gave, asked for, mistyped or forgotten."""
        rid = reservation["reservation_id"]
        if shown is None:
            self.say("ask_reservation_id", topic=topic)
            if self.rng.random() < 0.55:
                self._look_through(reservation)
                return
            shown = self._as_typed(rid)
            self.customer(("It's {id}.", "{id}", "The reservation id is {id}.", "sure, {id}", "I think it's {id}"), id=shown)
        if shown != rid:
            self.call("get_reservation_details", {"reservation_id": shown}, f"Error: reservation {shown} not found")
            self.say("reservation_not_found", shown=shown)
            self.customer(("Sorry, it's {id}.", "oops, {id}", "My mistake, the right one is {id}."), id=rid)
        self.read(reservation)

    def read(self, reservation: dict) -> None:
        self.seen[reservation["reservation_id"]] = reservation
        self.call("get_reservation_details", {"reservation_id": reservation["reservation_id"]}, reservation)

    def _look_through(self, wanted: dict) -> None:
        """The customer has no id, only where they are going: the agent reads their reservations until it finds it."""
        city = _CITIES[wanted["destination"]]
        self.customer(("I don't have it. It's my trip to {city} on {date}.", "not sure, it's the {city} flight",
                       "I can't find the email. The one from {origin} to {city}."),
                      city=city, date=wanted["flights"][0]["date"], origin=_CITIES[wanted["origin"]])
        for rid in self.user["reservations"]:
            if rid == wanted["reservation_id"]:
                break
            if rid in self.seen:  # read earlier in the conversation
                continue
            other = self.airline.reservation(self.user, rid, self.now)
            while other["destination"] == wanted["destination"]:  # else the customer's words would fit it too
                other = self.airline.reservation(self.user, rid, self.now)
            self.read(other)
        self.read(wanted)

    def pay(self, amount: float, purpose: str) -> str:
        """The payment id for a change costing `amount`: asked for where the customer has a choice, else their card.
        The policy takes a change's payment from a credit card or a gift card that covers it, never a certificate."""
        methods = [p for p, m in self.user["payment_methods"].items()
                   if m["source"] == "credit_card" or (m["source"] == "gift_card" and m["amount"] >= amount)]
        chosen = self.rng.choice(methods)
        if len(methods) > 1:
            self.say("ask_payment_method", purpose=purpose, amount=_money(abs(amount)),
                     methods="\n".join(f"- {_method(self.user, p)}" for p in methods))
            self.customer(("Use {method}.", "{method} please", "let's go with {method}"),
                          method=self.rng.choice(_spoken(self.user, chosen)))
        return chosen

    def confirm(self, job: str, phrasing: str | None = None, **values) -> None:
        self.say(job, phrasing, **values)
        self.customer(_YES)

    def transfer(self, issue: str) -> None:
        """A hand-over to a human, whose summary names the customer as a real agent's does."""
        user = self.user
        summary = (f"User {user['user_id']} ({self.first} {user['name']['last_name']}, {user['membership']} member) "
                   f"{issue}.")
        self.call("transfer_to_human_agents", {"summary": summary}, "Transfer successful")
        self.say("transfer_done")
        self.transferred = True

    def push_back(self, issue: str) -> None:
        """After a refusal the customer may insist, or ask for a person."""
        roll = self.rng.random()
        if roll < 0.25:
            self.customer(("Can't you make an exception? I've been flying with you for years.", "That's ridiculous. Please check again.",
                           "Is there really nothing you can do?"))
            self.say("refuse_policy", "refuse_again")
        elif roll < 0.4:
            self.customer(("Then I want to talk to a human.", "ok let me speak to a supervisor",
                           "This is unacceptable. Get me a real person."))
            self.transfer(f"{issue}; it was refused under the policy and the user asked for a human agent")


def _spoken(user: dict, payment_id: str) -> tuple[str, ...]:
    """How a customer names one of their payment methods."""
    method = user["payment_methods"][payment_id]
    if method["source"] == "credit_card":
        return (f"my {method['brand']} ending in {method['last_four']}", "the credit card", f"card ending {method['last_four']}",
                f"my {method['brand'].title()}")
    kind = method["source"].replace("_", " ")
    return (f"the {kind} with {_money(method['amount'])} on it", payment_id, f"{kind} {payment_id}")


def _allowance(user: dict, reservation: dict) -> dict:
    """The values a reply about the reservation's free bags may name."""
    free_each = _FREE_BAGS[user["membership"], reservation["cabin"]]
    return {**_details(reservation), "tier": user["membership"], "free_each": free_each,
            "free": free_each * len(reservation["passengers"])}


def _choose_flight(chat: _Chat, origin: str, destination: str, day: date, cabin: str, flexible: bool = False) -> list[dict]:
    """The agent searches the day's flights, direct and, where that finds little, with one stop, and presents them;
    a `flexible` customer may first ask about the next day. Returns the legs of their pick as a reservation holds them."""
    rng = chat.rng
    options = _present_flights(chat, origin, destination, day, cabin)
    if flexible and rng.random() < 0.2:
        day += timedelta(days=1)
        chat.customer(("Hmm, is there anything on {day}?", "What about the next day?", "none of those work. can you check {day}?"), day=day)
        options = _present_flights(chat, origin, destination, day, cabin)
    pick = rng.randrange(len(options))
    legs = options[pick]
    phrasings = ["I'll take {number}.", "The {ordinal} one, please.", "{number} works for me"]
    if [o[0]["scheduled_departure_time_est"] for o in options].count(legs[0]["scheduled_departure_time_est"]) == 1:
        phrasings.append("the one leaving at {time}")
    if pick == min(range(len(options)), key=lambda i: sum(leg["prices"][cabin] for leg in options[i])):
        phrasings.append("The cheapest one.")
    chat.customer(tuple(phrasings), number=legs[0]["flight_number"], time=legs[0]["scheduled_departure_time_est"][:5],
                  ordinal=("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")[pick])
    return [{"origin": leg["origin"], "destination": leg["destination"], "flight_number": leg["flight_number"],
             "date": leg["date"], "price": leg["prices"][cabin]} for leg in legs]


def _present_flights(chat: _Chat, origin: str, destination: str, day: date, cabin: str) -> list[list[dict]]:
    """Search and present the day's flights: the options shown, each a list of legs."""
    rng, airline = chat.rng, chat.airline
    query = {"origin": origin, "destination": destination, "date": f"{day}"}
    direct = airline.direct_flights(origin, destination, rng.choice((0, 1, 2, 3, 3, 4, 4, 5, 6)))
    chat.call("search_direct_flight", query, direct)
    options = [[{**flight, "date": f"{day}"}] for flight in direct]
    if not direct or rng.random() < 0.25:
        onestop = airline.onestop_flights(origin, destination, day, rng.randint(1, 4))
        chat.call("search_onestop_flight", query, onestop)
        options += onestop
    chat.say("present_flight_options", origin=origin, destination=destination, date=f"{day}", cabin=_cabin(cabin),
             count=len(options), options=_option_lines(options, cabin, rng.randrange(3)))
    return options


def _booked(flights: list[dict]) -> list[dict]:
    """Flights as the update and booking tools take them."""
    return [{"flight_number": f["flight_number"], "date": f["date"]} for f in flights]


def _difference(amount: float) -> dict:
    return {"difference": _money(abs(amount)), "charged": "charged to" if amount >= 0 else "refunded to",
            "more": "more" if amount >= 0 else "less"}


# --- what customers call about ------------------------------------------------------------------------------------


def _review(chat: _Chat) -> None:
    """The customer asks about a reservation; the agent reads it and answers, and answers a follow-up or two."""
    rng = chat.rng
    reservation = chat.reservation()
    shown = chat.mention(reservation)
    chat.request(rng.choice(("Can you tell me the details of my reservation{ref}?", "What flights are on my booking{ref}?",
                             "I'd like to review my trip{ref} before I travel.", "could you check my reservation{ref}? "
                             "I want to see what I booked.")).format(ref=_ref(shown)), "review your reservation")
    chat.find(reservation, shown, "look it up")
    chat.say("answer_reservation", **_details(reservation))
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        _follow_up(chat, reservation)


def _follow_up(chat: _Chat, reservation: dict) -> None:
    """A question about a reservation the agent has read, answered from it."""
    rng, user, details = chat.rng, chat.user, _details(reservation)
    question = rng.choice(("on board", "bags", "paid", "insurance"))
    if question == "on board":
        person = rng.choice(reservation["passengers"] + user["saved_passengers"])
        chat.customer(("Is {name} on it too?", "did you include {lower}?", "Can you check that {name} is booked?"),
                      name=_name(person), lower=person["first_name"].lower())
        on_board = person in reservation["passengers"]
        chat.say("answer_reservation", "answer_on_board" if on_board else "answer_not_on_board", name=_name(person),
                 dob=person["dob"], **details)
    elif question == "bags":
        chat.customer(("How many bags do I have on it?", "how many checked bags are included?"))
        chat.say("answer_reservation", "answer_bags", nonfree=reservation["nonfree_baggages"], **details)
    elif question == "paid":
        chat.customer(("How much did I pay for this?", "Which card did I use to pay?"))
        payment = reservation["payment_history"][0]
        chat.say("answer_reservation", "answer_paid", amount=_money(payment["amount"]),
                 method=_method(user, payment["payment_id"]), **details)
    else:
        chat.customer(("Does it have travel insurance?", "Can I add insurance to it?"))
        _explain_insurance(chat, reservation)


def _explain_insurance(chat: _Chat, reservation: dict) -> None:
    bought = reservation["insurance"] == "yes"
    chat.say("explain_insurance", "explain_insurance_bought" if bought else "explain_insurance_missing", **_details(reservation))


def _trips(chat: _Chat) -> None:
    """The customer asks what they have booked; the agent reads reservation after reservation and lists them."""
    rng, user = chat.rng, chat.user
    chat.request(rng.choice(("What trips do I have coming up?", "Can you list all my reservations?",
                             "I forgot which flights I booked, can you check?")), "check your trips")
    found = []
    for rid in user["reservations"][: rng.randint(2, 5)]:
        found.append(chat.seen.get(rid) or chat.airline.reservation(user, rid, chat.now))
        chat.read(found[-1])
    trips = "\n".join(f"- {r['reservation_id']}: {_flights(r['flights'])} ({_cabin(r['cabin'])}), {_names(r['passengers'])}"
                      for r in found)
    chat.say("answer_reservation", "answer_trips", trips=trips, count=len(found))
    if rng.random() < 0.3:
        _follow_up(chat, rng.choice(found))


def _cancel(chat: _Chat) -> None:
    """The customer wants to cancel: the agent learns why, checks the policy, and cancels, refuses, or, where a
    flight has been flown, hands over."""
    rng = chat.rng
    reservation = chat.reservation(days=(-5, 45))
    rid = reservation["reservation_id"]
    shown = chat.mention(reservation)
    reason = rng.choices(list(_REASONS), weights=(5, 2, 2, 1, 1))[0]
    stated = rng.random() < 0.5
    because = f" {rng.choice(_REASONS[reason])}" if stated else ""
    chat.request(rng.choice(("I need to cancel my reservation{ref}.{because}", "Please cancel booking{ref}.{because}",
                             "Can you cancel my flight{ref} for me?{because}", "i want to cancel{ref}.{because}"))
                 .format(ref=_ref(shown), because=because), "cancel your reservation")
    chat.find(reservation, shown, "cancel it")
    if not stated:
        chat.say("ask_cancel_reason", **_details(reservation))
        chat.customer(_REASONS[reason])
    flown = [f for f in reservation["flights"] if date.fromisoformat(f["date"]) < chat.now.date()]
    if flown:
        chat.transfer(f"wants to cancel reservation {rid}, but flight {flown[0]['flight_number']} on {flown[0]['date']} "
                      "has already been flown")
        return
    why = _cancellable(reservation, chat.now, reason)
    chat.think(f"Reservation {rid}: {_cabin(reservation['cabin'])}, booked {reservation['created_at']}, insurance "
               f"{reservation['insurance']}, reason {reason.replace('_', ' ')}. "
               + (f"It can be cancelled: {why}." if why else "The policy does not allow cancelling it."))
    if not why:
        chat.say("refuse_policy", "refuse_cancel", reason=reason.replace("_", " "), booked=reservation["created_at"][:10],
                 **_details(reservation))
        chat.push_back(f"wants to cancel reservation {rid} ({reason.replace('_', ' ')})")
        return
    payment = reservation["payment_history"][0]
    values = {**_details(reservation), "why": why, "refund": _money(payment["amount"]),
              "method": _method(chat.user, payment["payment_id"])}
    chat.confirm("confirm_action", "confirm_cancel", **values)
    chat.call("cancel_reservation", {"reservation_id": rid}, {**reservation, "status": "cancelled"})
    chat.say("action_done", "done_cancel", **values)


def _new_date(reservation: dict, leg: int, now: datetime, rng: random.Random) -> date:
    """A date to move flight `leg` to that keeps the trip in order and in the future."""
    flights = [date.fromisoformat(f["date"]) for f in reservation["flights"]]
    earliest = flights[leg - 1] + timedelta(days=1) if leg else now.date() + timedelta(days=1)
    latest = flights[leg + 1] - timedelta(days=1) if leg + 1 < len(flights) else flights[leg] + timedelta(days=10)
    shifted = flights[leg] + timedelta(days=rng.choice((-3, -2, -1, 1, 2, 3, 5, 7)))
    return min(max(shifted, earliest), latest)


def _change_flights(chat: _Chat) -> None:
    """The customer moves a flight to another date: search, options, the price difference, payment, confirm, update."""
    rng = chat.rng
    reservation = chat.reservation(days=(5, 60))
    rid, shown = reservation["reservation_id"], chat.mention(reservation)
    leg = rng.randrange(len(reservation["flights"]))
    old = reservation["flights"][leg]
    day = _new_date(reservation, leg, chat.now, rng)
    leg_name = ("outbound flight", "return flight")[leg] if len(reservation["flights"]) > 1 else "flight"
    when = rng.choice((f"{day}", f"{day:%B} {day.day}"))
    dated = rng.random() < 0.7
    asks = (("I need to change my {leg}{ref} to {when}.", "Can I move the {leg} on reservation{ref} to {when}?",
             "I'd like to fly on {when} instead. It's my booking{ref}.") if dated else
            ("I need to change my {leg}{ref}.", "Can I change the dates on my booking{ref}?", "i need to rebook my {leg}{ref}"))
    chat.request(rng.choice(asks).format(leg=leg_name, ref=_ref(shown), when=when), "change your flights")
    chat.find(reservation, shown, "change it")
    chat.think(f"Reservation {rid} is {_cabin(reservation['cabin'])}: " + (
        "basic economy flights cannot be modified." if reservation["cabin"] == "basic_economy" else
        f"its flights can change if origin, destination and trip type stay. Search {old['origin']} to {old['destination']} on {day}."))
    if reservation["cabin"] == "basic_economy":
        chat.say("refuse_policy", "refuse_basic_economy", **_details(reservation))
        if rng.random() < 0.4:
            cabin = rng.choice(("economy", "business"))
            chat.customer(("Ok, then upgrade me to {cabin}.", "Fine, what would it cost to go to {cabin}?"), cabin=_cabin(cabin))
            _change_cabin_of(chat, reservation, cabin)
        else:
            chat.push_back(f"wants to change the flights of basic economy reservation {rid}")
        return
    if not dated:
        chat.say("ask_new_date", **{**_details(reservation), "leg": leg_name, "origin": old["origin"], "destination": old["destination"]})
        chat.customer(("{when}", "I'd like to fly on {when} instead.", "Move the {leg} to {when} please."), when=when, leg=leg_name)
    last = leg + 1 == len(reservation["flights"])  # the next day keeps the trip in order
    legs = _choose_flight(chat, old["origin"], old["destination"], day, reservation["cabin"], flexible=last)
    flights = reservation["flights"][:leg] + legs + reservation["flights"][leg + 1:]
    count = len(reservation["passengers"])
    difference = (sum(f["price"] for f in legs) - old["price"]) * count
    chat.calculate(f"({' + '.join(str(f['price']) for f in legs)} - {old['price']}) * {count}", difference)
    payment = chat.pay(difference, "fare difference")
    values = {**_details(reservation), **_difference(difference), "flights": _flights(flights), "old": _flights([old]),
              "new": _flights(legs), "method": _method(chat.user, payment)}
    chat.confirm("confirm_action", "confirm_flights", **values)
    updated = {**reservation, "flights": flights,
               "payment_history": reservation["payment_history"] + [{"payment_id": payment, "amount": difference}]}
    chat.call("update_reservation_flights", {"reservation_id": rid, "cabin": reservation["cabin"], "flights": _booked(flights),
                                             "payment_id": payment}, updated)
    chat.seen[rid] = updated
    chat.say("action_done", "done_flights", **values)


def _change_cabin(chat: _Chat) -> None:
    """The customer moves a reservation to another cabin."""
    rng = chat.rng
    reservation = chat.reservation()
    shown = chat.mention(reservation)
    cabin = rng.choice([c for c in _CABINS if c != reservation["cabin"]])
    chat.request(rng.choice(("I'd like to change my reservation{ref} to {cabin}.", "Can I switch to {cabin} on my booking{ref}?",
                             "how much would {cabin} be for my trip{ref}?", "Please move us to {cabin} on reservation{ref}."))
                 .format(ref=_ref(shown), cabin=_cabin(cabin)), "change your cabin")
    chat.find(reservation, shown, "change the cabin")
    _change_cabin_of(chat, reservation, cabin)


def _change_cabin_of(chat: _Chat, reservation: dict, cabin: str) -> None:
    """The agent prices every flight in the new cabin, works out the difference, and updates once confirmed."""
    rng, airline = chat.rng, chat.airline
    rid, count = reservation["reservation_id"], len(reservation["passengers"])
    flights = []
    for flight in reservation["flights"]:
        ours = {**airline.flight(flight["origin"], flight["destination"], rng.randint(5, 21)), "flight_number": flight["flight_number"]}
        found = sorted(airline.direct_flights(flight["origin"], flight["destination"], rng.randint(0, 2)) + [ours],
                       key=lambda f: f["scheduled_departure_time_est"])
        chat.call("search_direct_flight", {"origin": flight["origin"], "destination": flight["destination"], "date": flight["date"]}, found)
        flights.append({**flight, "price": ours["prices"][cabin]})
    new, old = [f["price"] for f in flights], [f["price"] for f in reservation["flights"]]
    difference = (sum(new) - sum(old)) * count
    chat.calculate(f"({' + '.join(map(str, new))} - ({' + '.join(map(str, old))})) * {count}", difference)
    payment = chat.pay(difference, "cabin change")
    values = {**_details(reservation), **_difference(difference), "old": _cabin(reservation["cabin"]), "new": _cabin(cabin),
              "method": _method(chat.user, payment)}
    chat.confirm("confirm_action", "confirm_cabin", **values)
    updated = {**reservation, "cabin": cabin, "flights": flights,
               "payment_history": reservation["payment_history"] + [{"payment_id": payment, "amount": difference}]}
    chat.call("update_reservation_flights",
              {"reservation_id": rid, "cabin": cabin, "flights": _booked(flights), "payment_id": payment}, updated)
    chat.seen[rid] = updated
    chat.say("action_done", "done_cabin", **values)


def _add_bags(chat: _Chat) -> None:
    """The customer adds checked bags: the agent works out the free allowance and the cost, confirms, updates. Bags
    cannot be taken off."""
    rng, user = chat.rng, chat.user
    reservation = chat.reservation()
    rid, shown = reservation["reservation_id"], chat.mention(reservation)
    if rng.random() < 0.12:
        chat.request(rng.choice(("Can I remove a checked bag from my reservation{ref}?", "I want to take one bag off "
                                 "booking{ref} and get the fee back.")).format(ref=_ref(shown)), "change your bags")
        chat.find(reservation, shown, "look at your bags")
        chat.say("refuse_policy", "refuse_remove_bags")
        chat.push_back(f"wants to remove checked bags from reservation {rid}")
        return
    added = rng.randint(1, 3)
    chat.request(rng.choice(("I'd like to add {n} checked bag(s) to my reservation{ref}.", "Can I add {n} more bags to booking{ref}?",
                             "we need {n} extra suitcase(s) on my trip{ref}")).format(n=added, ref=_ref(shown)), "add checked bags")
    chat.find(reservation, shown, "add the bags")
    values = _allowance(user, reservation)
    before = reservation["total_baggages"]
    nonfree = max(0, before + added - values["free"])
    paid = nonfree - reservation["nonfree_baggages"]
    values |= {"before": before, "after": before + added, "added": added, "nonfree": nonfree, "paid": paid}
    chat.think(f"{values['tier']} member in {values['cabin']}: {values['free_each']} free bag(s) x {values['count']} passenger(s) = "
               f"{values['free']} free. {before} + {added} = {before + added} bags, {nonfree} not free, {paid} newly paid.")
    if rng.random() < 0.3:
        chat.customer(("How many of those are free for me?", "wait, how many bags do I get for free?"))
        chat.say("explain_baggage", **values)
        chat.customer(("OK, add them.", "fine, go ahead and add {added}"), added=added)
    if paid:
        chat.calculate(f"{paid} * {_BAG_PRICE}", paid * _BAG_PRICE)
    payment = chat.pay(paid * _BAG_PRICE, "baggage fee") if paid else reservation["payment_history"][0]["payment_id"]
    values |= {"cost": _money(paid * _BAG_PRICE), "method": _method(user, payment)}
    chat.confirm("confirm_action", "confirm_bags", **values)
    updated = {**reservation, "total_baggages": before + added, "nonfree_baggages": nonfree,
               "payment_history": reservation["payment_history"] + ([{"payment_id": payment, "amount": paid * _BAG_PRICE}] if paid else [])}
    chat.call("update_reservation_baggages", {"reservation_id": rid, "total_baggages": before + added, "nonfree_baggages": nonfree,
                                              "payment_id": payment}, updated)
    chat.seen[rid] = updated
    chat.say("action_done", "done_bags", **values)


def _change_passengers(chat: _Chat) -> None:
    """The customer swaps a passenger for one of their saved passengers; adding one is against the policy."""
    rng, user = chat.rng, chat.user
    reservation = chat.reservation()
    rid, shown = reservation["reservation_id"], chat.mention(reservation)
    others = [p for p in user["saved_passengers"] if p not in reservation["passengers"]]
    if not others or rng.random() < 0.15:
        name = _name(rng.choice(others)) if others else "my friend"
        chat.request(rng.choice(("Can I add {name} to my reservation{ref}?", "I need to add one more passenger, {name}, "
                                 "to booking{ref}.")).format(name=name, ref=_ref(shown)), "update the passengers")
        chat.find(reservation, shown, "check the passengers")
        chat.say("refuse_policy", "refuse_passenger_count", name=name.replace("my friend", "your friend"), **_details(reservation))
        chat.push_back(f"wants to add a passenger to reservation {rid}")
        return
    new, at = rng.choice(others), rng.randrange(len(reservation["passengers"]))
    old = reservation["passengers"][at]
    detailed = rng.random() < 0.5
    born = f" (born {new['dob']})" if detailed else ""
    chat.request(rng.choice(("I need to change a passenger on my reservation{ref}. {old} can't come; {new}{born} will travel "
                             "instead.", "Please replace {old} with {new}{born} on booking{ref}.",
                             "can you swap {old} for someone else on my trip{ref}?")).format(
                     ref=_ref(shown), old=old["first_name"], new=_name(new), born=born), "update the passengers")
    chat.find(reservation, shown, "change the passengers")
    if not detailed:
        chat.say("ask_passenger_details", "ask_replacement", old=_name(old))
        chat.customer(("{name}, born {dob}", "It's {name}. Date of birth {dob}.", "{lower} ({dob})"),
                      name=_name(new), dob=new["dob"], lower=_name(new).lower())
    passengers = reservation["passengers"][:at] + [new] + reservation["passengers"][at + 1:]
    values = {**_details(reservation), "passengers": _passenger_list(passengers), "names": _names(passengers),
              "old": _name(old), "new": _name(new)}
    chat.confirm("confirm_action", "confirm_passengers", **values)
    updated = {**reservation, "passengers": passengers}
    chat.call("update_reservation_passengers", {"reservation_id": rid, "passengers": passengers}, updated)
    chat.seen[rid] = updated
    chat.say("action_done", "done_passengers", **values)


def _book(chat: _Chat) -> None:
    """A new booking: the trip, a flight search and choice each way, passengers, insurance, bags and payment, the
    total, confirmation, and the booking with every argument taken from the conversation."""
    rng, user = chat.rng, chat.user
    origin, destination = rng.sample(_AIRPORTS, 2)
    round_trip, cabin = rng.random() < 0.5, rng.choice(_CABINS)
    day = chat.now.date() + timedelta(days=rng.randint(4, 60))
    back = day + timedelta(days=rng.randint(2, 14))
    by_city = rng.random() < 0.6
    trip = {"orig": _CITIES[origin] if by_city else origin, "dest": _CITIES[destination] if by_city else destination,
            "way": "round trip" if round_trip else "one-way flight", "day": f"{day}", "cabin": _cabin(cabin),
            "returning": f", coming back on {back}" if round_trip else ""}
    if rng.random() < 0.4:
        chat.request(rng.choice(("I want to book a flight to {dest}.", "I need a new reservation to {dest}.",
                                 "can you book me a trip to {dest}")).format(**trip), "book a new trip")
        chat.say("ask_trip_details")
        chat.customer(("From {orig}, {way} in {cabin}, leaving {day}{returning}.", "{orig}. {way}, {cabin}, on {day}{returning}."), **trip)
    else:
        chat.request(rng.choice(("I'd like to book a {way} in {cabin} from {orig} to {dest} on {day}{returning}.",
                                 "Can you book me a {way} {orig} to {dest}, departing {day}{returning}? {cabin} please."))
                     .format(**trip), "book a new trip")
    if by_city and rng.random() < 0.5:
        chat.call("list_all_airports", {}, _CITIES)
    flights = _choose_flight(chat, origin, destination, day, cabin, flexible=True)  # the return is 2 days later at least
    if round_trip:
        flights += _choose_flight(chat, destination, origin, back, cabin, flexible=True)
    me = {"first_name": user["name"]["first_name"], "last_name": user["name"]["last_name"], "dob": user["dob"]}
    travellers = [me] + rng.sample(user["saved_passengers"], rng.randint(0, len(user["saved_passengers"])))
    chat.say("ask_passenger_details")
    others = "; ".join(f"{_name(p)}, born {p['dob']}" for p in travellers[1:])
    chat.customer(("Just me." if len(travellers) == 1 else "Me and {others}.",
                   "{me}, {dob}" + ("" if len(travellers) == 1 else ". Also {others}")), me=_name(me).lower(), dob=me["dob"], others=others)
    count, insurance, bags = len(travellers), rng.choice(("yes", "no")), rng.randint(0, 2 * len(travellers))
    nonfree = max(0, bags - _FREE_BAGS[user["membership"], cabin] * count)
    fares = [f["price"] for f in flights]
    total = sum(fares) * count + (_INSURANCE_PRICE * count if insurance == "yes" else 0) + _BAG_PRICE * nonfree
    methods = list(user["payment_methods"])
    chat.say("ask_booking_extras", methods="\n".join(f"- {_method(user, p)}" for p in methods))
    payment = rng.choice([p for p in methods if user["payment_methods"][p].get("amount", total) >= total])
    chat.customer(("{insured}, {bags} checked bag(s), and {method}.", "{bags} bags. {insured}. Pay with {method}."),
                  insured="Yes to insurance" if insurance == "yes" else "No insurance", bags=bags,
                  method=rng.choice(_spoken(user, payment)))
    chat.think(f"{count} passenger(s) in {_cabin(cabin)}, fares {fares}, insurance {insurance}, {bags} bag(s) of which "
               f"{nonfree} not free for a {user['membership']} member.")
    expression = f"({' + '.join(map(str, fares))}) * {count}"
    expression += f" + {_INSURANCE_PRICE} * {count}" if insurance == "yes" else ""
    expression += f" + {_BAG_PRICE} * {nonfree}" if nonfree else ""
    chat.calculate(expression, total)
    payments = [{"payment_id": payment, "amount": total}]
    booking = {"user_id": user["user_id"], "origin": origin, "destination": destination,
               "flight_type": "round_trip" if round_trip else "one_way", "cabin": cabin, "flights": _booked(flights),
               "passengers": travellers, "payment_methods": payments, "total_baggages": bags, "nonfree_baggages": nonfree,
               "insurance": insurance}
    reservation = {"reservation_id": chat.airline.code(), **booking, "flights": flights, "payment_history": payments,
                   "created_at": f"{chat.now:%Y-%m-%dT%H:%M:%S}"}
    del reservation["payment_methods"]
    values = {**_details(reservation), "nonfree": nonfree, "total": _money(total), "method": _method(user, payment)}
    chat.confirm("confirm_action", "confirm_booking", **values)
    chat.call("book_reservation", booking, reservation)
    chat.seen[reservation["reservation_id"]] = reservation
    chat.say("action_done", "done_booking", **values)


def _compensation(chat: _Chat) -> None:
    """The customer complains of a cancelled or delayed flight and asks for something: the agent checks the flight's
    status and the customer's standing, and sends a certificate or refuses."""
    rng, user = chat.rng, chat.user
    reservation = chat.reservation(days=(-6, -1))
    shown = chat.mention(reservation)
    flight, what = reservation["flights"][0], rng.choice(("cancelled", "delayed"))
    facts = {"number": flight["flight_number"], "date": flight["date"], "what": what,
             "route": f"{flight['origin']} to {flight['destination']}", "how": f" by {rng.randint(3, 9)} hours" if what == "delayed" else ""}
    chat.request(rng.choice(("My flight {number} on {date} was {what}{how}. What can you do for me?",
                             "I'm really upset, flight {number} was {what} and I missed my meeting. I want compensation.",
                             "The {route} flight on my reservation{ref} got {what}{how}. Am I entitled to anything?"))
                 .format(ref=_ref(shown), **facts), "look into your flight")
    chat.find(reservation, shown, "look into it")
    route = {"origin": flight["origin"], "destination": flight["destination"]}
    ours = {**chat.airline.flight(**route, departs=rng.randint(5, 21), status=what), "flight_number": flight["flight_number"]}
    others = [{**f, "status": "landed"} for f in chat.airline.direct_flights(**route, count=rng.randint(0, 2))]
    chat.call("search_direct_flight", {**route, "date": flight["date"]}, sorted(others + [ours], key=lambda f: f["scheduled_departure_time_est"]))
    count, per = len(reservation["passengers"]), 100 if what == "cancelled" else 50
    why = (f"you are a {user['membership']} member" if user["membership"] != "regular" else
           "you bought travel insurance" if reservation["insurance"] == "yes" else
           "you flew business" if reservation["cabin"] == "business" else "")
    chat.think(f"Flight {flight['flight_number']} on {flight['date']} was {what}. Membership {user['membership']}, insurance "
               f"{reservation['insurance']}, cabin {reservation['cabin']}, {count} passenger(s): "
               + (f"eligible for {per} x {count}." if why else "not eligible for compensation."))
    if not why:
        chat.say("refuse_policy", "refuse_compensation", tier=user["membership"], cabin=_cabin(reservation["cabin"]), **facts)
        chat.push_back(f"asks for compensation for {what} flight {flight['flight_number']} on {flight['date']}")
        return
    if count > 1 and rng.random() < 0.7:
        chat.calculate(f"{per} * {count}", per * count)
    chat.confirm("offer_certificate", why=why, amount=_money(per * count), per=_money(per), count=count, **facts)
    chat.call("send_certificate", {"user_id": user["user_id"], "amount": per * count},
              f"Certificate certificate_{rng.randrange(10**6, 10**7)} added to user {user['user_id']} with amount {per * count}.")
    chat.say("action_done", "done_certificate", amount=_money(per * count))


def _question(chat: _Chat) -> None:
    """A question about the rules as they apply to one reservation: the free bags, or travel insurance."""
    rng = chat.rng
    reservation = chat.reservation()
    shown = chat.mention(reservation)
    if rng.random() < 0.5:
        chat.request(rng.choice(("How many checked bags can I bring for free on my trip{ref}?", "what's my baggage allowance "
                                 "for reservation{ref}?", "Do I have to pay for bags on booking{ref}?")).format(ref=_ref(shown)),
                     "check your baggage allowance")
        chat.find(reservation, shown, "check it")
        chat.say("explain_baggage", **_allowance(chat.user, reservation))
    else:
        chat.request(rng.choice(("Can I still add travel insurance to my reservation{ref}?", "Is my trip{ref} insured?",
                                 "what does the insurance on booking{ref} cover?")).format(ref=_ref(shown)), "check your insurance")
        chat.find(reservation, shown, "check it")
        _explain_insurance(chat, reservation)


def _human(chat: _Chat) -> None:
    """Something no tool can do: the customer asks for a person, and the agent hands over."""
    issue = chat.rng.choice(list(_OUT_OF_SCOPE))
    chat.request(chat.rng.choice(("I need help with {issue}. Can I speak to a human?", "I have a problem with {issue} and "
                                  "I'd like to talk to a person.", "Please transfer me to an agent about {issue}."))
                 .format(issue=issue), "look into this")
    chat.transfer(f"asks for a human agent about {_OUT_OF_SCOPE[issue]}")


# What customers call about, weighted so that the replies come out in about a real airline agent's proportions
_FLOWS: dict[str, tuple[Callable[[_Chat], None], int]] = {
    "change_flights": (_change_flights, 22), "book": (_book, 16), "cancel": (_cancel, 13), "change_cabin": (_change_cabin, 10),
    "review": (_review, 9), "add_bags": (_add_bags, 7), "trips": (_trips, 7), "compensation": (_compensation, 6),
    "change_passengers": (_change_passengers, 5), "question": (_question, 5), "human": (_human, 3),
}


def _conversation(airline: _Airline, now: datetime) -> _Chat:
    """One customer's conversation: one to three requests, perhaps an off-topic question, perhaps a goodbye."""
    chat = _Chat(airline, now)
    rng = chat.rng
    names, weights = list(_FLOWS), [weight for _, weight in _FLOWS.values()]
    for name in rng.choices(names, weights, k=rng.choices((1, 2, 3), (45, 40, 15))[0]):
        if chat.transferred:
            break
        chat.flows.append(name)
        _FLOWS[name][0](chat)
    if not chat.transferred and rng.random() < 0.12:
        code = rng.choice(_AIRPORTS)
        chat.customer(_OFF_TOPIC, city=_CITIES[code], code=code)
        chat.say("decline_off_topic")
    if not chat.transferred and rng.random() < 0.75:
        chat.customer(("That's all, thanks!", "thank you so much", "No, that's everything. Bye.", "great, thanks for your help"))
        chat.say("goodbye")
    return chat


def write_long_logs(folder: Path, conversations: int = 120, seed: int = 11, start: datetime = datetime(2026, 11, 2, tzinfo=timezone.utc),
                    days: int = 14) -> Path:
    """Write `conversations` transcripts to `folder/airline-transcripts.jsonl` and the job of each of their calls
    to `folder/airline-jobs.json`; return the transcripts' path."""
    airline = _Airline(seed)
    written = []
    for _ in range(conversations):
        now = start + timedelta(seconds=airline.rng.randrange(days * 86_400))
        metadata = {"conversation_id": "conv_" + airline.code(20), "timestamp": f"{now:%Y-%m-%dT%H:%M:%SZ}", "model": _MODEL}
        chat = _conversation(airline, now.replace(tzinfo=None))
        written.append((now, json.dumps({"messages": chat.messages, "tools": _TOOLS, "metadata": metadata}), chat, metadata))
    written.sort(key=lambda w: w[:2])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / _TRANSCRIPTS
    path.write_text("".join(line + "\n" for _, line, _, _ in written))
    jobs = [{"source_file": _TRANSCRIPTS, "source_line": number, "turn": turn, "conversation_id": metadata["conversation_id"],
             "flows": "+".join(chat.flows), "job": job}
            for number, (_, _, chat, metadata) in enumerate(written, start=1) for turn, job in enumerate(chat.jobs)]
    (folder / _JOBS).write_text("[\n" + ",\n".join(map(json.dumps, jobs)) + "\n]\n")
    return path


def read_jobs(transcripts: Path) -> list[dict]:
    """The job of every call in `transcripts`, as `write_long_logs` wrote it beside them: one row per assistant turn,
    under the keys step 1 gives a transcript's calls (`source_file`, `source_line`, `turn`)."""
    return json.loads((transcripts.parent / _JOBS).read_text())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write long demo logs of an airline customer-service agent.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--conversations", type=int, default=120)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    print(write_long_logs(args.folder, args.conversations, args.seed))
