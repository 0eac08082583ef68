"""The router: which task a live call belongs to, from its request alone, learnt from step 3's own labels.

Step 3 names a call's task partly by its reply (which tool it calls, what its text does), and a live call has no reply
yet. So the router is a classifier trained on step 3's labels (`task_clusters`' task per clean call) that reads only
what a request carries, the request signature:

- the tools offered, the system prompt and the last user or tool message (as step 3's signature has them), and
- where the conversation stands, since in one agent's logs the same request text is followed by different jobs and
  what decides between them is the state: the assistant's last words (the question it asked the customer), the tools
  called so far and the last two in order, the roles of the last three messages, how many turns the customer has
  taken, and the fields of the last tool result.

Each part's words (a word holding a digit is one token, `<v>`: dates and ids say nothing of the task) are hashed into
one sparse vector (scikit-learn's `HashingVectorizer`: no vocabulary, so the artifact holds no word of any call), and
a logistic regression gives each task a probability. A call is routed when its best task is not `unassigned`, its
probability reaches the gateway's `min_confidence`, and it resembles the task's calls: its cosine to the task's
centroid is at least `MARGIN` times the lowest that the task's own calls have. Otherwise it is unknown and stays with
the LLM. Hashing and a linear model keep routing well under a millisecond of CPU per call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

from pipeline.tasks import NOISE, PART_CHARS
from pipeline.warehouse import frame

ROUTER_FILE = "router.joblib"
N_FEATURES = 2**16  # the model holds a weight per feature and task: 0.5 MB a task
MARGIN = 0.8  # a live call may be this much less like its task than the least typical call the task was learnt from
HELD_OUT_EVERY = 5  # every fifth call of each task is held out to measure agreement, the rest trains
MAX_TURNS = 8  # the customer's turns are counted up to this; later turns look alike
_TEXT_PARTS = ("system", "message", "said")  # read as words and word pairs; the other parts are names, one per word
_WORD = re.compile(r"[a-z_]+|\S*\d\S*|[^\sa-z_\d]")
_HASHER = HashingVectorizer(n_features=N_FEATURES, analyzer=lambda tokens: tokens, alternate_sign=False, norm="l2")


def request_parts(call: dict) -> dict[str, str]:
    """What a request says about its task: tools offered, system prompt, last message and where the conversation is."""
    messages = json.loads(call["messages"])
    system = next((m["content"] for m in messages if m["role"] == "system" and m.get("content")), "")
    last = next((m["content"] for m in reversed(messages) if m["role"] in ("user", "tool") and m.get("content")), "")
    conversation = [m for m in messages if m["role"] != "system"]
    said = next((m["content"] for m in reversed(conversation) if m["role"] == "assistant" and m.get("content")), "")
    called = [c["function"]["name"] for m in conversation for c in m.get("tool_calls") or []]
    tools = sorted(t["function"]["name"] or "" for t in json.loads(call["tools"] or "[]"))
    return {
        "tools": " ".join(tools) or "none",
        "system": system[:PART_CHARS],
        "message": last[:PART_CHARS],
        "said": said[:PART_CHARS],
        "last": conversation[-1]["role"] if conversation else "none",
        "called": called[-1] if called else "none",
        "history": " ".join(sorted(set(called))) or "none",
        "recent": ">".join(called[-2:]) or "none",
        "roles": ">".join(m["role"] for m in conversation[-3:]) or "none",
        "turns": str(min(sum(m["role"] == "user" for m in conversation), MAX_TURNS)),
        "result": " ".join(_result_fields(conversation[-1])) if conversation else "none",
    }


def _result_fields(message: dict) -> list[str]:
    """The top-level fields of a tool result given as a JSON object: they say which tool answered and what it found."""
    if message["role"] != "tool":
        return ["none"]
    try:
        result = json.loads(message.get("content") or "")
    except json.JSONDecodeError:
        return ["text"]
    return sorted(result) if isinstance(result, dict) else [type(result).__name__]


def request_tokens(call: dict) -> list[str]:
    """The request's words and word pairs, each tagged with its part, so `refund` in the system prompt and in the
    message are different features."""
    tokens = []
    for part, text in request_parts(call).items():
        if part not in _TEXT_PARTS:
            tokens += [f"{part}:{word}" for word in text.split()]
            continue
        words = ["<v>" if any(c.isdigit() for c in w) else w for w in _WORD.findall(text.lower())]
        tokens += [f"{part}:{w}" for w in words]
        tokens += [f"{part}:{a} {b}" for a, b in zip(words, words[1:])]
    return tokens


def features(calls: Sequence[dict]):
    """Unit-length sparse vectors of the requests."""
    return _HASHER.transform([request_tokens(call) for call in calls])


@dataclass(frozen=True)
class Route:
    """A call's task, or None when it is unknown, and why."""

    task_id: str | None
    confidence: float
    reason: str


@dataclass
class Router:
    classes: list[str]
    model: LogisticRegression | None  # None where step 3 found one task only: every call is that task's or unknown
    centroids: sparse.csr_matrix  # one unit row per class
    floors: np.ndarray  # per class: the least cosine to its centroid a call of it may have

    def assign(self, calls: Sequence[dict], min_confidence: float) -> list[Route]:
        vectors = features(calls)
        if self.model is None:
            probabilities = np.ones((len(calls), 1))
        else:
            probabilities = self.model.predict_proba(vectors)
        best = probabilities.argmax(axis=1)
        rows = np.arange(len(best))
        similarity = (vectors @ self.centroids.T).toarray()[rows, best]
        routes = []
        for label, p, s in zip(best, probabilities[rows, best], similarity):
            task = self.classes[label]
            if task == NOISE:
                routes.append(Route(None, float(p), "like the calls step 3 left unassigned"))
            elif p < min_confidence:
                routes.append(Route(None, float(p), f"confidence {p:.2f} below {min_confidence:.2f}"))
            elif s < self.floors[label]:
                routes.append(Route(None, float(p), f"unlike the calls of {task}"))
            else:
                routes.append(Route(task, float(p), "routed"))
        return routes

    def save(self, folder: Path) -> Path:
        """Written whole and renamed into place, so a gateway reloading it never reads half a file."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / ROUTER_FILE
        staging = path.with_name(path.name + ".partial")
        joblib.dump(self, staging)
        staging.replace(path)
        return path


def load_router(folder: Path) -> Router | None:
    """The router step 3 wrote, or None before it has run (every call then goes to the LLM)."""
    path = folder / ROUTER_FILE
    return joblib.load(path) if path.exists() else None


def train_router(calls: Sequence[dict], task_ids: Sequence[str]) -> Router:
    """Fit the classifier on step 3's task per call. A task seen once cannot be told apart from chance, so its call
    counts as unassigned."""
    labels = pd.Series(list(task_ids), dtype=object)
    labels = labels.where(labels.map(labels.value_counts()) >= 2, NOISE).to_numpy()
    vectors = features(calls)
    classes = sorted(set(labels))
    model = LogisticRegression(C=50.0, max_iter=3000).fit(vectors, labels) if len(classes) > 1 else None
    if model is not None:
        classes = list(model.classes_)
    centroids = normalize(sparse.vstack([sparse.csr_matrix(vectors[labels == c].mean(axis=0)) for c in classes]))
    floors = np.array([MARGIN * (vectors[labels == c] @ centroids[i].T).toarray().min() for i, c in enumerate(classes)])
    return Router(classes, model, centroids.tocsr(), floors)


def held_out_split(task_ids: Sequence[str]) -> np.ndarray:
    """True for every `HELD_OUT_EVERY`-th call of each task, in the order given (oldest first)."""
    position = pd.Series(list(task_ids)).groupby(list(task_ids)).cumcount().to_numpy()
    return position % HELD_OUT_EVERY == HELD_OUT_EVERY - 1


@dataclass(frozen=True)
class Agreement:
    table: pd.DataFrame  # the `task_router` rows: per task, held-out calls, routed, agreeing
    routed_share: float  # of held-out calls step 3 gave a task, the share the router routed
    agreement: float  # of those routed, the share routed to step 3's task


def agreement(router: Router, calls: Sequence[dict], task_ids: Sequence[str], min_confidence: float) -> Agreement:
    """How the router's assignment of `calls` compares with step 3's: per task, and over calls step 3 gave a task."""
    routes = router.assign(calls, min_confidence)
    rows = []
    for task in sorted(set(task_ids)):
        mine = [r for r, t in zip(routes, task_ids) if t == task]
        routed = [r for r in mine if r.task_id is not None]
        rows.append({"task_id": task, "held_out": len(mine), "routed": len(routed),
                     "agreeing": sum(r.task_id == task for r in routed),
                     "routed_elsewhere": sum(r.task_id != task for r in routed)})
    table = frame("task_router", rows)
    tasked = table[table["task_id"] != NOISE]
    routed = int(tasked["routed"].sum())
    return Agreement(table, routed / max(int(tasked["held_out"].sum()), 1), int(tasked["agreeing"].sum()) / max(routed, 1))


def tradeoff(router: Router, calls: Sequence[dict], task_ids: Sequence[str],
             thresholds: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9)) -> pd.DataFrame:
    """The share routed and the agreement with step 3 at each `min_confidence`: what a lower bar gains and costs."""
    rows = []
    for threshold in thresholds:
        checked = agreement(router, calls, task_ids, threshold)
        rows.append({"min_confidence": threshold, "routed": f"{checked.routed_share:.0%}",
                     "agreeing": f"{checked.agreement:.1%}"})
    return pd.DataFrame(rows)
