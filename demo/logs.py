"""Seeded demo logs of the Acme Outfitters support agent (gpt-4o-2024-08-06), as a log collector finds them.

`write_demo_logs` writes about `calls` LLM calls spread over `days` days, in every format the collector reads:

- `requests-<week start>.jsonl.gz`: NVIDIA data-flywheel request/response records, one file per week; about 1% of
  the records are written twice, byte for byte, as a retrying logger would;
- `transcripts.jsonl`: multi-turn order conversations with tool results, one call per assistant turn;
- `otel-spans.jsonl`: OpenTelemetry GenAI spans as OTLP JSON exports, a few with a non-model `execute_tool` span;
- `broken-export.jsonl`: a few good records and exactly 5 bad lines, to show the collector's quarantine;
- with `--long N`, `airline-transcripts.jsonl`: N long airline-agent conversations (`demo.long_logs`).

Six tasks recur. Five have a fixed system prompt and answers a small model can learn (intent, ticket_routing,
order_lookup, refund_extraction, summary); planning is open-ended and never repeats. Customers' names, emails,
phones, addresses, card numbers and API keys appear as they do in real logs. Same arguments, byte-identical files.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from faker import Faker

from demo.long_logs import write_long_logs


_MODEL = "gpt-4o-2024-08-06"
_CLIENT_ID = "acme-support"
_SERVICE = "acme-support-agent"
_ALNUM = string.ascii_letters + string.digits
_DAY = 86_400

_HINT_RATE = 0.8  # real logs do not always name their task
_DUPLICATE_RATE = 0.01
_OTEL_RATE = 0.25
_CONVERSATION_RATE = 0.6  # of order_lookup picks; the rest are single calls
_TOOL_SPAN_RATE = 0.3  # of OTel order lookups that also export the tool's own span
_OBJECT_ARGUMENTS_RATE = 1 / 3  # the newer data-flywheel contract logs tool arguments as an object
_BROKEN_FILE_GOOD = 6

# Picks per task: an order conversation holds 3-4 calls, so order_lookup's 10 comes out near 20% of calls.
_TASK_WEIGHTS = {
    "intent": 20,
    "ticket_routing": 20,
    "order_lookup": 10,
    "refund_extraction": 15,
    "summary": 15,
    "planning": 10,
}
# Hours in UTC: the shop's customers are American, so traffic peaks in the US afternoon and evening.
_HOUR_WEIGHTS = (6, 5, 4, 3, 2, 1, 1, 1, 1, 1, 2, 3, 4, 6, 7, 8, 8, 9, 9, 9, 8, 8, 7, 7)

_PRODUCTS = (
    "Trailblazer 2 tent", "Summit 45L backpack", "Alpine down jacket", "Ridgeline hiking boots",
    "Cascade rain shell", "Nomad 20F sleeping bag", "Basecamp camp stove", "Glacier trekking poles",
    "Horizon headlamp", "Drift kayak paddle", "Merino base layer", "Canyon water filter",
    "Tundra fleece hoodie", "Switchback trail runners", "Pioneer camp chair",
)
# The shop's order ids (AC-), SKUs (AO-) and these products are allowed through step 2 by demo/scrub.yaml.
_COLORS = ("forest green", "navy", "charcoal", "burnt orange", "sand", "black")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DEVICES = ("iPhone 15", "Pixel 8", "Galaxy S23", "iPad", "OnePlus 12")
_MONTHS = ("January", "February", "March", "April", "May", "June", "September", "October")
_CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}
_CARRIERS = ("UPS", "FedEx", "USPS", "DHL")


@dataclass(frozen=True)
class _Customer:
    first: str
    last: str
    email: str
    phone: str
    address: str

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"


@dataclass
class _Call:
    """One model call before it is written in a log format."""

    system: str
    user: str
    temperature: float
    content: str | None = None
    tool_call: tuple[str, dict[str, Any]] | None = None
    tools: list[dict] | None = None
    response_format: dict | None = None


class _Source:
    """The seeded randomness every generator draws from."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fake = Faker("en_US", use_weighting=False)
        self.fake.seed_instance(seed)

    def token(self, length: int, alphabet: str = _ALNUM) -> str:
        return "".join(self.rng.choices(alphabet, k=length))

    def customer(self) -> _Customer:
        first, last = self.fake.first_name(), self.fake.last_name()
        given, family = (re.sub(r"[^a-z]", "", part.lower()) for part in (first, last))
        handle = self.rng.choice((f"{given}.{family}", f"{given[0]}{family}", f"{given}{self.rng.randrange(1, 99)}"))
        email = f"{handle}@{self.fake.free_email_domain()}"
        address = self.fake.address().replace("\n", ", ")
        return _Customer(first, last, email, self.fake.phone_number(), address)

    def order_id(self) -> str:
        return f"AC-{self.rng.randrange(100_000, 1_000_000)}"

    def product(self) -> str:
        return self.rng.choice(_PRODUCTS)

    def card(self) -> str:
        number = self.fake.credit_card_number(card_type="visa16")
        if self.rng.random() < 0.5:  # people paste cards both ways
            return " ".join(number[i : i + 4] for i in range(0, len(number), 4))
        return number

    def api_key(self) -> str:
        kind = self.rng.choice(("openai", "openai", "aws", "github"))
        if kind == "aws":
            return "AKIA" + self.token(16, string.ascii_uppercase + string.digits)
        if kind == "github":
            return "ghp_" + self.token(36)
        return "sk-" + self.token(48)

    def fields(self, customer: _Customer) -> dict[str, Any]:
        """Every placeholder a message template may use, so templates pick what they need."""
        rng = self.rng
        return {
            "first": customer.first,
            "name": customer.name,
            "email": customer.email,
            "phone": customer.phone,
            "address": customer.address,
            "new_address": self.fake.address().replace("\n", ", "),
            "order_id": self.order_id(),
            "product": self.product(),
            "other_product": self.product(),
            "color": rng.choice(_COLORS),
            "weekday": rng.choice(_WEEKDAYS),
            "days": rng.randint(2, 12),
            "city": self.fake.city(),
            "country": self.fake.country(),
            "device": rng.choice(_DEVICES),
            "time": f"{rng.randrange(24):02d}:{rng.randrange(60):02d}",
            "n": rng.randrange(20, 400),
            "money": f"${rng.randrange(1500, 40000) / 100:.2f}",
        }


def _function_tool(name: str, description: str, properties: dict[str, dict]) -> dict:
    parameters = {
        "type": "object", "properties": properties, "required": list(properties), "additionalProperties": False,
    }
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


_QUEUES = ["billing", "shipping", "returns", "technical", "general"]
_PRIORITIES = ["low", "normal", "high", "urgent"]
_ROUTING_TOOLS = [
    _function_tool(
        "route_ticket",
        "Send a support ticket to the queue that owns it, with a priority.",
        {"queue": {"type": "string", "enum": _QUEUES}, "priority": {"type": "string", "enum": _PRIORITIES}},
    )
]
_ORDER_TOOLS = [
    _function_tool(
        "lookup_order",
        "Fetch an order's status, items, shipping and customer details by its order id.",
        {"order_id": {"type": "string", "pattern": "^AC-\\d{6}$", "description": "Order id, e.g. AC-123456"}},
    ),
    _function_tool(
        "lookup_customer",
        "Fetch a customer's profile and recent orders by email address.",
        {"email": {"type": "string", "format": "email"}},
    ),
]

# --- the recurring tasks ---------------------------------------------------------------------------

_INTENT_LABELS = (
    "order_status", "refund_request", "shipping_address_change", "product_question", "account_access", "complaint",
)
_INTENT_SYSTEM = (
    "You are the intent classifier for Acme Outfitters customer support. Read the customer's message and answer "
    f"with exactly one label from this list: {', '.join(_INTENT_LABELS)}. Reply with the label only, without "
    "punctuation or explanation. If several labels fit, choose the one the customer most needs resolved."
)
# The template family decides the label, so the answer is learnable from the wording.
_INTENT_MESSAGES: dict[str, tuple[str, ...]] = {
    "order_status": (
        "Where is my order {order_id}? I placed it {days} days ago and the tracking page still says processing.",
        "Can you tell me when order {order_id} will arrive? I need the {product} for a trip on {weekday}.",
        "Tracking for {order_id} hasn't updated since {weekday}. Is my package lost?",
        "has my {product} shipped yet?? order {order_id}",
    ),
    "refund_request": (
        "I'd like a refund for the {product} from order {order_id}, it doesn't fit.",
        "Please refund order {order_id}. I sent the {product} back {days} days ago and still have no money back.",
        "How do I get my money back for {order_id}? The {product} broke after two days.",
        "I want a refund, not store credit, for the {product} (order {order_id}).",
    ),
    "shipping_address_change": (
        "I just moved - can you ship order {order_id} to {new_address} instead?",
        "Please change the delivery address on {order_id} to {new_address}. Sorry for the hassle!",
        "Wrong address on my order {order_id}! It should go to {new_address}.",
    ),
    "product_question": (
        "Is the {product} waterproof? Thinking of taking it to {city}.",
        "Does the {product} come in {color}?",
        "I'm usually a medium - which size of the {product} should I get?",
        "What's the difference between the {product} and the {other_product}?",
    ),
    "account_access": (
        "I can't log in to my account. My email is {email}.",
        "The password reset email never arrives at {email}. Can you help?",
        "My account got locked after too many login attempts. Name is {name}, phone {phone}.",
        "Someone changed the email on my account and I can't get in anymore. It used to be {email}.",
    ),
    "complaint": (
        "This is the third time my delivery has been late. Really disappointed with Acme.",
        "Your courier left my {product} in the rain and the box was soaked. Unacceptable.",
        "I've been on hold for 40 minutes and nobody picks up. Terrible service.",
        "The {product} fell apart after one hike. I expected better quality for the price.",
    ),
}
_GREETINGS = ("", "", "Hi! ", "Hello,\n", "Hey there. ", "Good morning!\n")
_SIGN_OFFS = ("", "", "\n\nThanks,\n{first}", "\n\n{name}\n{phone}", " - {first}", "\n\nSent from my iPhone")


def _intent(src: _Source) -> _Call:
    label = src.rng.choice(_INTENT_LABELS)
    fields = src.fields(src.customer())
    body = src.rng.choice(_INTENT_MESSAGES[label])
    text = src.rng.choice(_GREETINGS) + body + src.rng.choice(_SIGN_OFFS)
    return _Call(_INTENT_SYSTEM, text.format(**fields), 0.0, content=label)


_ROUTING_SYSTEM = (
    "You triage incoming support tickets for Acme Outfitters. Call route_ticket exactly once with the queue that "
    "owns the problem and a priority: urgent for outages that block many customers, high for money taken wrongly "
    "or parcels lost, normal for ordinary requests, low for general questions. Never answer the customer directly."
)
# (queue, priority, subject, body): the family decides the routing.
_TICKETS = (
    ("billing", "high", "Charged twice", "I was charged twice for order {order_id}, {money} each time, on my card "
     "{card}. Please refund the duplicate charge."),
    ("billing", "high", "Charge I don't recognize", "There is a charge of {money} from Acme Outfitters on my card "
     "{card} that I never made. Please look into this right away."),
    ("billing", "normal", "Invoice for order {order_id}", "Could you send me an invoice with our company name for "
     "order {order_id}? Our accounting team needs it."),
    ("shipping", "high", "Package never arrived", "Tracking says order {order_id} was delivered on {weekday} but "
     "nothing came. I already asked my neighbors."),
    ("shipping", "normal", "Delivery delayed", "Order {order_id} was supposed to arrive by {weekday} and tracking "
     "hasn't moved in {days} days."),
    ("shipping", "low", "Shipping to {country}", "Do you ship to {country}? If so, how long does it take and are "
     "there customs fees?"),
    ("returns", "normal", "Return label", "I'd like to return the {product} from order {order_id}. Can you send me "
     "a return label?"),
    ("returns", "low", "Exchange for a bigger size", "Can I exchange the {product} from order {order_id} for one "
     "size up? No rush."),
    ("technical", "urgent", "Site down - checkout failing", "Your site is down: checkout returns a 502 error for "
     "every customer since {time} UTC. We resell your gear and are losing orders. Our API key is {api_key} if "
     "you need to check our account."),
    ("technical", "urgent", "Partner API returning 500", "Our store integration calls your API with the key "
     "{api_key} and every request has failed with HTTP 500 since {time} UTC. Our whole catalog sync is blocked."),
    ("technical", "normal", "App crashes on wishlist", "The Acme app crashes every time I open my wishlist on my "
     "{device}. I already reinstalled it."),
    ("general", "low", "Store in {city}?", "Do you have a physical store in {city}? I'd like to try on the "
     "{product} before buying."),
    ("general", "normal", "Group discount", "We run a hiking club in {city} with {n} members and would like to "
     "discuss a group discount."),
)
_TICKET_LAYOUTS = (
    "Subject: {subject}\nFrom: {name} <{email}>\n\n{body}\n\nPhone: {phone}",
    "Subject: {subject}\n\n{body}\n\n{name}\n{email}\n{phone}",
    "New ticket via contact form\nName: {name}\nEmail: {email}\nPhone: {phone}\nTopic: {subject}\nMessage: {body}",
)


def _ticket_routing(src: _Source) -> _Call:
    queue, priority, subject, body = src.rng.choice(_TICKETS)
    fields = src.fields(src.customer()) | {"card": src.card(), "api_key": src.api_key()}
    layout = src.rng.choice(_TICKET_LAYOUTS)
    text = layout.format(subject=subject.format(**fields), body=body.format(**fields), **fields)
    arguments = {"queue": queue, "priority": priority}
    return _Call(_ROUTING_SYSTEM, text, 0.0, tool_call=("route_ticket", arguments), tools=_ROUTING_TOOLS)


_ORDER_SYSTEM = (
    "You are the Acme Outfitters support agent. Before answering any question about an order, look it up with "
    "the lookup_order tool; never guess order details. Be friendly and concise, address the customer by first "
    "name, and never share internal notes or another customer's data."
)
_ORDER_QUESTIONS = (
    "Hi, can you check the status of order {order_id}?",
    "Where is my package? Order number is {order_id}. My email is {email}.",
    "I ordered the {product} last week ({order_id}) and haven't heard anything since.",
    "Order {order_id} - any update on delivery? Thanks, {first}",
    "{order_id} still says processing. Can you look into it? You can call me at {phone}.",
    "Hello, this is {name}. When will order {order_id} get here?",
)


def _order_lookup(src: _Source) -> _Call:
    fields = src.fields(src.customer())
    text = src.rng.choice(_ORDER_QUESTIONS).format(**fields)
    tool_call = ("lookup_order", {"order_id": fields["order_id"]})
    return _Call(_ORDER_SYSTEM, text, 0.2, tool_call=tool_call, tools=_ORDER_TOOLS)


_REFUND_REASONS = ("damaged", "wrong_item", "late_delivery", "not_as_described", "changed_mind")
_REFUND_SYSTEM = (
    "You extract refund details from customer emails for Acme Outfitters. Return a JSON object with the keys "
    "order_id, amount (a number), currency (USD, EUR or GBP) and reason (one of "
    f"{', '.join(_REFUND_REASONS)}). Use only values stated in the email and output nothing but the JSON object."
)
_REFUND_REASON_TEXTS: dict[str, tuple[str, ...]] = {
    "damaged": ("The {product} arrived with a torn seam.", "The {product} was broken when I opened the box."),
    "wrong_item": ("I ordered the {product} but received a {other_product} instead.",),
    "late_delivery": ("The {product} arrived {days} days after the promised date, too late for my trip.",),
    "not_as_described": ("The {product} is nothing like the photos on your site; the material feels cheap.",),
    "changed_mind": ("I changed my mind about the {product} and never used it.",),
}
_REFUND_LAYOUTS = (
    "Subject: Refund for order {order_id}\n\nHello Acme team,\n\n{reason} I paid {price} and would like a refund."
    "\n\nOrder number: {order_id}\nName: {name}\nEmail: {email}\nAddress: {address}\n\nBest regards,\n{first}",
    "Hi,\n{reason} Please refund the {price} I paid for order {order_id} to my card.\n\n{name}\n{address}\n"
    "{email} / {phone}",
    "To whom it may concern: my order {order_id} ({product}). {reason} I expect a full refund of {price}. "
    "Contact me at {email}. - {name}, {address}",
)


def _refund_extraction(src: _Source) -> _Call:
    rng = src.rng
    fields = src.fields(src.customer())
    reason = rng.choice(_REFUND_REASONS)
    amount = rng.randrange(1200, 48000) / 100
    currency = rng.choice(("USD", "USD", "EUR", "GBP"))
    price = rng.choice((f"{_CURRENCY_SYMBOLS[currency]}{amount:.2f}", f"{amount:.2f} {currency}"))
    reason_text = rng.choice(_REFUND_REASON_TEXTS[reason]).format(**fields)
    text = rng.choice(_REFUND_LAYOUTS).format(reason=reason_text, price=price, **fields)
    answer = {"order_id": fields["order_id"], "amount": amount, "currency": currency, "reason": reason}
    return _Call(
        _REFUND_SYSTEM, text, 0.0, content=json.dumps(answer),
        response_format={"type": "json_object"},
    )


_SUMMARY_SYSTEM = (
    "You summarize Acme Outfitters support conversations for the CRM. Write exactly one sentence in the form: "
    "Customer <first name> reported <issue> for order <order id>; agent <action>. Leave out emails, phone numbers "
    "and any other contact details."
)
# (what the customer writes, the issue as the summary names it)
_SUMMARY_ISSUES = (
    ("the {product} from order {order_id} arrived damaged, the zipper is ripped out", "a damaged {product}"),
    ("tracking says order {order_id} was delivered but I never got it", "a missing package"),
    ("the {product} in order {order_id} is the wrong size", "a wrong-size {product}"),
    ("order {order_id} is {days} days late and I needed it for a trip", "a late delivery"),
    ("I was charged twice for order {order_id}", "a duplicate charge"),
    ("I got a {other_product} instead of the {product} I ordered in {order_id}", "a wrong item"),
)
# (what the agent writes, the action as the summary names it)
_SUMMARY_ACTIONS = (
    ("I've issued a full refund to your original payment method; expect it in 3-5 business days.", "issued a refund"),
    ("I've shipped a replacement with free express delivery.", "sent a replacement"),
    ("I've opened a trace with the carrier and will update you within 48 hours.", "opened a carrier trace"),
    ("I've emailed you a prepaid return label.", "sent a return label"),
    ("I've escalated this to our billing team, who will contact you within one business day.", "escalated to billing"),
)


def _summary(src: _Source) -> _Call:
    rng = src.rng
    customer = src.customer()
    fields = src.fields(customer)
    issue_text, issue = (part.format(**fields) for part in rng.choice(_SUMMARY_ISSUES))
    action_text, action = rng.choice(_SUMMARY_ACTIONS)
    agent = src.fake.first_name()
    transcript = (
        f"Summarize this support conversation.\n\nConversation #{rng.randrange(10_000, 99_999)} (chat)\n"
        f"Customer ({customer.name}, {customer.email}, {customer.phone}): Hi, {issue_text}.\n"
        f"Agent {agent}: I'm sorry to hear that, {customer.first}. Let me check order {fields['order_id']}.\n"
        f"Agent {agent}: {action_text}\n"
        f"Customer: {rng.choice(('Thanks!', 'OK, thank you.', 'Great, appreciate it.', 'Fine.'))}"
    )
    reply = f"Customer {customer.first} reported {issue} for order {fields['order_id']}; agent {action}."
    return _Call(_SUMMARY_SYSTEM, transcript, 0.3, content=reply)


_PLANNING_SYSTEM = (
    "You are the Acme operations planning assistant. Help managers at Acme Outfitters turn goals into concrete "
    "plans: numbered steps with owners and timelines, the main risks, and how to measure success. Be practical; "
    "the company runs an online outdoor-gear shop with two warehouses and a 60-person support team."
)
_PLAN_REQUESTS = (
    "Draft a plan to launch our loyalty program in {country} by {month}.",
    "We need to reorganize the returns warehouse in {city}; it handles about {n} parcels a day. What's the plan?",
    "Plan holiday staffing for {n} support agents across {zones} time zones.",
    "How should we roll out the new self-service returns portal to customers in {country}?",
    "Outline how we cut first-response time by {pct}% before {month}.",
    "Propose a plan to move the {city} fulfilment center to a new warehouse management system without downtime.",
    "Plan a clearance sale for {n} overstocked units of the {product}.",
    "We want to open a pop-up store in {city} for {month}. Give me a step-by-step plan.",
    "Plan the migration of our help center to a new ticketing vendor with {n} tickets still open.",
    "Design a plan to reduce damaged-in-transit returns of the {product} by {pct}%.",
)
# Steps in the order a plan takes them; a reply draws several, each from its own variants.
_PLAN_STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Set the goal", (
        "Agree on one measurable target with {owner} and write it into a one-page brief.",
        "Confirm scope, budget and a hard deadline with {owner} before anything else.",
        "Define what done looks like: a {pct}% improvement, signed off by {owner}.",
    )),
    ("Baseline", (
        "Pull the last {weeks} weeks of data so every later change can be compared against it.",
        "Map the current process end to end and time each step on a normal {weekday}.",
        "Interview {few} frontline staff about where time is lost today.",
    )),
    ("Stakeholders", (
        "Hold a kickoff with {owner}, finance and IT, and agree who decides what.",
        "Name one owner per workstream and set a weekly 30-minute check-in.",
        "Share the brief with the regional managers and collect objections within {days} days.",
    )),
    ("Tools and vendors", (
        "Shortlist {few} vendors and run a paid trial with the best two.",
        "Check whether our current tools can do this before buying anything new.",
        "Ask IT for a sandbox and a written rollback plan by day {days}.",
    )),
    ("Budget", (
        "Estimate cost per order and get sign-off for a {pct}% contingency.",
        "Split the budget into one-off and running costs and review it with finance in week {weeks}.",
        "Cap spend for the first {weeks} weeks and release the rest only after the pilot.",
    )),
    ("Pilot", (
        "Pilot with {pct}% of orders in one region for {weeks} weeks.",
        "Run a {weeks}-week pilot with {few} volunteers from the {team} team.",
        "Start with a single shift on a {weekday} and compare it against the baseline.",
    )),
    ("Training", (
        "Train staff in {few} short sessions and record them for late joiners.",
        "Write a one-page playbook and an FAQ, owned by {owner}.",
        "Pair each new hire with a buddy for their first {days} shifts.",
    )),
    ("Customer communication", (
        "Tell customers {days} days ahead by email and on the order page.",
        "Prepare macros for the ten most likely customer questions.",
        "Update the help center and have {owner} review the wording.",
    )),
    ("Rollout", (
        "Roll out in waves of {pct}% with a go/no-go check after each wave.",
        "Switch over on a {weekday}, never right before a weekend or a sale.",
        "Go live region by region over {weeks} weeks, busiest region last.",
    )),
    ("Monitoring", (
        "Watch a daily dashboard of CSAT, backlog and cost per contact.",
        "Alert {owner} if the backlog grows more than {pct}% day over day.",
        "Sample {few}0 tickets a week for quality and share the findings.",
    )),
    ("Contingency", (
        "Keep {few} people on standby and a manual fallback for the first week.",
        "Agree in advance what triggers a rollback and who can call it.",
        "Pre-book {few} temp staff through the agency in case volume spikes.",
    )),
    ("Review", (
        "Hold a retrospective after {weeks} weeks and decide what to keep.",
        "Report results to leadership with a go/no-go for the next region.",
        "Compare against the baseline in week {weeks} and adjust the targets.",
    )),
)
_PLAN_OPENINGS = ("Here's a plan", "Here is a phased plan", "Proposed plan", "A practical plan", "Suggested approach")
_PLAN_OWNERS = (
    "the ops lead", "the support manager", "the warehouse lead", "finance", "the CX team", "marketing", "IT",
    "the regional manager", "the head of logistics",
)
_PLAN_TEAMS = ("support", "returns", "warehouse", "logistics", "CX", "marketing")
_PLAN_RISKS = (
    "carrier capacity in peak season", "agents pulled back into the backlog", "vendor lock-in", "data migration "
    "errors", "customers missing the announcement", "budget overrun", "low adoption by staff", "local regulations",
    "stock running out mid-launch", "a slow approval from legal",
)
_PLAN_METRICS = (
    "first-response time", "CSAT", "cost per order", "return processing time", "repeat purchase rate",
    "tickets per 100 orders", "on-time delivery rate",
)


def _planning(src: _Source) -> _Call:
    rng = src.rng

    def numbers() -> dict[str, Any]:
        return {
            "owner": rng.choice(_PLAN_OWNERS), "team": rng.choice(_PLAN_TEAMS), "weekday": rng.choice(_WEEKDAYS[:5]),
            "pct": rng.randrange(5, 60, 5), "weeks": rng.randint(2, 12), "days": rng.randint(3, 21),
            "few": rng.randint(2, 9),
        }

    fields = {
        "city": src.fake.city(), "country": src.fake.country(), "product": src.product(), "month": rng.choice(_MONTHS),
        "n": rng.randrange(20, 400), "zones": rng.randint(2, 5), "pct": rng.randrange(10, 60, 5),
    }
    request = rng.choice(_PLAN_REQUESTS).format(**fields)
    chosen = sorted(rng.sample(range(len(_PLAN_STEPS)), rng.randint(5, 8)))
    lines = [f"{rng.choice(_PLAN_OPENINGS)}, over about {rng.randint(4, 16)} weeks:", ""]
    for number, index in enumerate(chosen, start=1):
        title, variants = _PLAN_STEPS[index]
        step = " ".join(v.format(**numbers()) for v in rng.sample(variants, rng.randint(1, 2)))
        lines.append(f"{number}. **{title}**: {step} Owner: {rng.choice(_PLAN_OWNERS)}, week {rng.randint(1, 12)}.")
    risks = rng.sample(_PLAN_RISKS, rng.randint(2, 3))
    lines += ["", f"Main risks: {', '.join(risks)}.", f"Measure success by {rng.choice(_PLAN_METRICS)}, "
              f"aiming for a {rng.randrange(5, 40)}% improvement within {rng.randint(2, 9)} months."]
    return _Call(_PLANNING_SYSTEM, request, 0.8, content="\n".join(lines))


_MAKERS: dict[str, Callable[[_Source], _Call]] = {
    "intent": _intent,
    "ticket_routing": _ticket_routing,
    "order_lookup": _order_lookup,
    "refund_extraction": _refund_extraction,
    "summary": _summary,
    "planning": _planning,
}

# --- order conversations (transcripts) -------------------------------------------------------------


def _order_record(src: _Source, customer: _Customer, order_id: str, day: date) -> dict:
    rng = src.rng
    status = rng.choice(("processing", "shipped", "shipped", "delivered", "delayed"))
    carrier = None if status == "processing" else rng.choice(_CARRIERS)
    tracking = None
    if carrier == "UPS":
        tracking = "1Z" + src.token(16, string.ascii_uppercase + string.digits)
    elif carrier:
        tracking = src.token(rng.choice((12, 20)), string.digits)
    items = [
        {"sku": f"AO-{rng.randrange(10_000, 100_000)}", "name": src.product(), "qty": rng.randint(1, 2),
         "unit_price": rng.randrange(1900, 39900) / 100}
        for _ in range(rng.randint(1, 3))
    ]
    eta = day + timedelta(days=rng.randint(-3, 0) if status == "delivered" else rng.randint(1, 7))
    return {
        "order_id": order_id,
        "status": status,
        "placed_at": (day - timedelta(days=rng.randint(2, 10))).isoformat(),
        "customer": {"name": customer.name, "email": customer.email, "phone": customer.phone},
        "shipping_address": customer.address,
        "items": items,
        "total": round(sum(i["qty"] * i["unit_price"] for i in items), 2),
        "currency": "USD",
        "payment": {"method": "visa", "card_last4": src.card()[-4:]},
        "carrier": carrier,
        "tracking_number": tracking,
        "estimated_delivery": eta.isoformat(),
    }


def _order_answer(order: dict, first: str) -> str:
    eta = date.fromisoformat(order["estimated_delivery"])
    when = f"{eta:%A}, {eta:%B} {eta.day}"
    oid, carrier = order["order_id"], order["carrier"]
    items = ", ".join(f"{i['qty']} x {i['name']}" for i in order["items"])
    if order["status"] == "processing":
        return (f"Hi {first}, your order {oid} ({items}) is still being packed at our warehouse. It should ship "
                f"within 1-2 business days, and you'll get an email with tracking as soon as it does.")
    if order["status"] == "delivered":
        return (f"Hi {first}, our records show order {oid} was delivered by {carrier} on {when} to "
                f"{order['shipping_address']}. If you can't find it, let me know and I'll open a trace.")
    if order["status"] == "delayed":
        return (f"Hi {first}, I'm sorry: order {oid} is delayed at a {carrier} hub. The new estimated delivery "
                f"date is {when}. Tracking number: {order['tracking_number']}.")
    return (f"Hi {first}! Your order {oid} ({items}) has shipped with {carrier} and should arrive by {when}. "
            f"Tracking number: {order['tracking_number']}.")


def _follow_up(src: _Source, order: dict, first: str) -> tuple[str, str]:
    """A customer's follow-up question and the agent's answer, which depends on the order looked up."""
    kind = src.rng.choice(("returns", "address", "thanks"))
    oid = order["order_id"]
    if kind == "returns":
        return (f"Thanks! What's your return policy if the {order['items'][0]['name']} doesn't fit?",
                "You can return unworn items within 30 days of delivery for a full refund. Start the return at "
                "acme-outfitters.example/returns and we'll email you a prepaid label.")
    if kind == "thanks":
        return ("Great, thanks for your help!", f"You're welcome, {first}! Enjoy your {order['items'][0]['name']}.")
    new_address = src.fake.address().replace("\n", ", ")
    question = f"Can you send it to my office instead? {new_address}"
    if order["status"] == "processing":
        return question, f"Done! I've changed the shipping address for {oid} to {new_address}."
    if order["status"] == "delivered":
        return question, f"Order {oid} has already been delivered, so its address can no longer be changed."
    return question, (f"Sorry, {oid} has already left our warehouse, so I can't change the address. You can ask "
                      f"{order['carrier']} to redirect it with tracking number {order['tracking_number']}.")


def _tool_turn(src: _Source, customer: _Customer, order_id: str, day: date) -> tuple[list[dict], dict]:
    """The assistant's lookup_order call, the tool's result and the assistant's answer; also the order."""
    call_id = "call_" + src.token(24)
    order = _order_record(src, customer, order_id, day)
    function = {"name": "lookup_order", "arguments": json.dumps({"order_id": order_id})}
    tool_calls = [{"id": call_id, "type": "function", "function": function}]
    return [
        {"role": "assistant", "content": None, "tool_calls": tool_calls},
        {"role": "tool", "tool_call_id": call_id, "content": json.dumps(order)},
        {"role": "assistant", "content": _order_answer(order, customer.first)},
    ], order


def _conversation(src: _Source, ts: int, second_order: bool) -> dict:
    """A whole order conversation: 4 assistant turns when the customer asks about a second order, else 3."""
    rng = src.rng
    customer = src.customer()
    fields = src.fields(customer)
    day = datetime.fromtimestamp(ts, timezone.utc).date()
    messages: list[dict] = [
        {"role": "system", "content": _ORDER_SYSTEM},
        {"role": "user", "content": rng.choice(_ORDER_QUESTIONS).format(**fields)},
    ]
    turn, order = _tool_turn(src, customer, fields["order_id"], day)
    messages += turn
    if second_order:
        other = src.order_id()
        messages.append({"role": "user", "content": f"Also, could you check order {other}? Same account."})
        messages += _tool_turn(src, customer, other, day)[0]
    else:
        question, answer = _follow_up(src, order, customer.first)
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    metadata = {"conversation_id": "conv_" + src.token(24), "timestamp": _iso(ts)}
    if rng.random() < _HINT_RATE:
        metadata["workload_id"] = "order_lookup"
    return {"messages": messages, "tools": _ORDER_TOOLS, "metadata": metadata}


# --- log formats -----------------------------------------------------------------------------------


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _usage(call: _Call) -> tuple[int, int]:
    """Token counts as a tokenizer would roughly give them: about four characters a token."""
    prompt = len(call.system) + len(call.user) + (len(json.dumps(call.tools)) if call.tools else 0)
    reply = call.content if call.content is not None else json.dumps(call.tool_call)
    return prompt // 4 + 7, len(reply) // 4 + 1


def _request_record(src: _Source, call: _Call, ts: int, hint: str | None) -> dict:
    request: dict[str, Any] = {
        "model": _MODEL,
        "messages": [{"role": "system", "content": call.system}, {"role": "user", "content": call.user}],
    }
    if call.tools:
        request |= {"tools": call.tools, "tool_choice": "auto"}
    if call.response_format:
        request["response_format"] = call.response_format
    request["temperature"] = call.temperature
    message: dict[str, Any] = {"role": "assistant", "content": call.content}
    if call.tool_call:
        name, arguments = call.tool_call
        logged = arguments if src.rng.random() < _OBJECT_ARGUMENTS_RATE else json.dumps(arguments)
        function = {"name": name, "arguments": logged}
        message["tool_calls"] = [{"id": "call_" + src.token(24), "type": "function", "function": function}]
    prompt_tokens, completion_tokens = _usage(call)
    response = {
        "id": "chatcmpl-" + src.token(29),
        "object": "chat.completion",
        "created": ts + src.rng.randint(0, 2),
        "model": _MODEL,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if call.tool_call else "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }
    record: dict[str, Any] = {"timestamp": ts}
    if hint:
        record["workload_id"] = hint
    return record | {"client_id": _CLIENT_ID, "request": request, "response": response}


def _attribute(key: str, value: str | int | float | list[str]) -> dict:
    if isinstance(value, list):
        encoded: dict = {"arrayValue": {"values": [{"stringValue": v} for v in value]}}
    elif isinstance(value, int):
        encoded = {"intValue": str(value)}  # OTLP JSON writes 64-bit integers as strings
    elif isinstance(value, float):
        encoded = {"doubleValue": value}
    else:
        encoded = {"stringValue": value}
    return {"key": key, "value": encoded}


def _text_part(text: str | None) -> dict:
    return {"type": "text", "content": text}


def _otel_export(src: _Source, call: _Call, ts: int, hint: str | None, tool_span: bool) -> dict:
    rng = src.rng
    trace_id = src.token(32, "0123456789abcdef")
    start = ts * 10**9 + rng.randrange(10**9)
    end = start + rng.randint(300, 2500) * 10**6
    if call.tool_call:
        name, arguments = call.tool_call
        call_id = "call_" + src.token(24)
        part: dict = {"type": "tool_call", "id": call_id, "name": name, "arguments": arguments}
    else:
        part = _text_part(call.content)
    finish = "tool_call" if call.tool_call else "stop"
    output = {"role": "assistant", "parts": [part], "finish_reason": finish}
    prompt_tokens, completion_tokens = _usage(call)
    attributes = [
        _attribute("gen_ai.operation.name", "chat"),
        _attribute("gen_ai.provider.name", "openai"),
        _attribute("gen_ai.request.model", _MODEL),
        _attribute("gen_ai.request.temperature", call.temperature),
        _attribute("gen_ai.response.model", _MODEL),
        _attribute("gen_ai.response.id", "chatcmpl-" + src.token(29)),
        _attribute("gen_ai.response.finish_reasons", [finish]),
        _attribute("gen_ai.conversation.id", "conv_" + src.token(24)),
    ]
    if hint:
        attributes.append(_attribute("gen_ai.agent.name", hint))
    if call.response_format:
        attributes.append(_attribute("gen_ai.output.type", "json"))
    attributes += [
        _attribute("gen_ai.usage.input_tokens", prompt_tokens),
        _attribute("gen_ai.usage.output_tokens", completion_tokens),
        _attribute("gen_ai.system_instructions", json.dumps([_text_part(call.system)])),
        _attribute("gen_ai.input.messages", json.dumps([{"role": "user", "parts": [_text_part(call.user)]}])),
        _attribute("gen_ai.output.messages", json.dumps([output])),
    ]
    if call.tools:
        definitions = [{"type": "function", **t["function"]} for t in call.tools]
        attributes.append(_attribute("gen_ai.tool.definitions", json.dumps(definitions)))
    spans = [{
        "traceId": trace_id, "spanId": src.token(16, "0123456789abcdef"), "name": f"chat {_MODEL}", "kind": 3,
        "startTimeUnixNano": str(start), "endTimeUnixNano": str(end), "attributes": attributes,
    }]
    if tool_span and call.tool_call:
        # The agent framework also traces running the tool; that span is not a model call.
        tool_start = end + rng.randint(1, 20) * 10**6
        spans.append({
            "traceId": trace_id, "spanId": src.token(16, "0123456789abcdef"), "name": f"execute_tool {name}",
            "kind": 1, "startTimeUnixNano": str(tool_start),
            "endTimeUnixNano": str(tool_start + rng.randint(20, 300) * 10**6),
            "attributes": [
                _attribute("gen_ai.operation.name", "execute_tool"),
                _attribute("gen_ai.tool.name", name),
                _attribute("gen_ai.tool.call.id", call_id),
                _attribute("gen_ai.tool.type", "function"),
            ],
        })
    resource = {"attributes": [_attribute("service.name", _SERVICE)]}
    scope = {"scope": {"name": "openinference"}, "spans": spans}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [scope]}]}


def _broken_lines(src: _Source, ts: int) -> list[bytes]:
    """The 5 bad lines of a partly broken export, one of each kind the collector must quarantine."""
    truncated = _line(_request_record(src, _intent(src), ts, "intent"))
    no_response = _request_record(src, _ticket_routing(src), ts + 41, "ticket_routing")
    del no_response["response"]  # the logger crashed before the reply came back
    return [
        truncated[: len(truncated) // 2] + b"\n",
        _line({"event": "heartbeat", "ts": ts + 7}),
        _line(no_response),
        b'{"timestamp": %d, "client_id": "acme-support", "note": "caf\xe9 cr\xe8me \xff\xfe"}\n' % (ts + 90),
        _line({}),
    ]


def _line(record: dict) -> bytes:
    return (json.dumps(record, ensure_ascii=False) + "\n").encode()


def _write(path: Path, lines: list[bytes]) -> Path:
    data = b"".join(lines)
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path


def _timestamp(rng: random.Random, t0: int, days: int) -> int:
    hour = rng.choices(range(24), _HOUR_WEIGHTS)[0]
    return t0 + rng.randrange(days) * _DAY + hour * 3600 + rng.randrange(3600)


def write_demo_logs(
    folder: Path, calls: int = 2000, seed: int = 7, start: date = date(2026, 11, 2), days: int = 14
) -> list[Path]:
    """Write about `calls` LLM calls as log files under `folder`; return the paths written."""
    src = _Source(seed)
    rng = src.rng
    t0 = int(datetime(start.year, start.month, start.day, tzinfo=timezone.utc).timestamp())
    tasks, weights = list(_TASK_WEIGHTS), list(_TASK_WEIGHTS.values())
    requests: list[tuple[int, list[bytes]]] = []
    transcripts: list[tuple[int, bytes]] = []
    spans: list[tuple[int, bytes]] = []
    broken: list[tuple[int, bytes]] = []
    remaining = calls
    while remaining > 0:
        ts = _timestamp(rng, t0, days)
        task = rng.choices(tasks, weights)[0]
        if task == "order_lookup" and rng.random() < _CONVERSATION_RATE:
            second_order = rng.random() < 0.3
            turns = 4 if second_order else 3
            if turns <= remaining:  # near the end, fall back to single calls to land exactly on `calls`
                transcripts.append((ts, _line(_conversation(src, ts, second_order))))
                remaining -= turns
                continue
        call = _MAKERS[task](src)
        hint = task if rng.random() < _HINT_RATE else None
        if rng.random() < _OTEL_RATE:
            tool_span = task == "order_lookup" and rng.random() < _TOOL_SPAN_RATE
            spans.append((ts, _line(_otel_export(src, call, ts, hint, tool_span))))
            remaining -= 1
        elif len(broken) < _BROKEN_FILE_GOOD:
            broken.append((ts, _line(_request_record(src, call, ts, hint))))
            remaining -= 1
        else:
            line = _line(_request_record(src, call, ts, hint))
            copies = 2 if remaining >= 2 and rng.random() < _DUPLICATE_RATE else 1
            requests.append((ts, [line] * copies))
            remaining -= copies

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    requests = _by_time(requests)
    for week in range(0, days, 7):
        week_start = t0 + week * _DAY
        lines = [line for ts, copies in requests if week_start <= ts < week_start + 7 * _DAY for line in copies]
        paths.append(_write(folder / f"requests-{start + timedelta(days=week)}.jsonl.gz", lines))
    paths.append(_write(folder / "transcripts.jsonl", [line for _, line in _by_time(transcripts)]))
    paths.append(_write(folder / "otel-spans.jsonl", [line for _, line in _by_time(spans)]))
    broken_lines = [line for _, line in _by_time(broken)]
    for bad in _broken_lines(src, t0 + rng.randrange(days * _DAY)):
        broken_lines.insert(rng.randint(0, len(broken_lines)), bad)
    paths.append(_write(folder / "broken-export.jsonl", broken_lines))
    return paths


def _by_time(items: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    return sorted(items, key=lambda item: item[0])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write demo logs of the Acme Outfitters support agent.")
    parser.add_argument("folder", type=Path, help="folder to write the log files into")
    parser.add_argument("--calls", type=int, default=2000, help="number of LLM calls to write")
    parser.add_argument("--seed", type=int, default=7, help="random seed; same seed, same files")
    parser.add_argument("--long", type=int, default=0, metavar="CONVERSATIONS",
                        help="also write this many long airline-agent conversations (demo.long_logs)")
    args = parser.parse_args()
    for written in write_demo_logs(args.folder, calls=args.calls, seed=args.seed):
        print(written)
    print(f"{args.calls} calls")  # the generator lands exactly on the number asked for
    if args.long:
        print(write_long_logs(args.folder, args.long, args.seed))
