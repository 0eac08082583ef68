"""The optional LLM judge of text replies, against a local OpenAI-compatible endpoint that grades like a strict one."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from pipeline.judge import Judge, JudgeError, judge_from
from pipeline.metrics import score_replies
from pipeline.settings import JudgeConfig, Settings


@pytest.fixture
def endpoint():
    """(base URL, the requests it received): a reply equal to the reference gets 10, another one 3, an empty one
    an answer that is no score."""
    received = []

    class Grader(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({"body": body, "authorization": self.headers["Authorization"]})
            prompt = body["messages"][-1]["content"]
            reference, candidate = prompt.split("Reference reply:\n")[1].split("\n\nCandidate reply:\n")
            answer = "10" if candidate == reference else "Score: 3" if candidate else "I cannot tell."
            data = json.dumps({"id": "r", "object": "chat.completion", "created": 0, "model": body["model"], "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Grader)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1", received
    server.shutdown()


def embed(texts):
    return np.ones((len(texts), 3))


def test_with_a_judge_a_text_reply_scores_its_rating_and_keeps_its_similarity(endpoint, monkeypatch):
    url, received = endpoint
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    judge = Judge(JudgeConfig(base_url=url, model="grader", api_key_env="JUDGE_KEY"))

    scores = score_replies("text", ["Your order shipped.", "Refund issued."], ["Your order shipped.", "Hello<|im_end|>"], embed,
                           judge, ["Where is my order?", "Refund please"])

    assert list(scores["judge"]) == [1.0, 0.3] and list(scores["score"]) == [1.0, 0.3]
    assert list(scores["similarity"]) == pytest.approx([1.0, 1.0])  # still there, no longer the score
    request = received[0]["body"]
    assert request["model"] == "grader" and request["temperature"] == 0
    assert "Request:\nWhere is my order?" in request["messages"][-1]["content"]
    assert received[1]["authorization"] == "Bearer sk-test"
    assert "Hello" in received[1]["body"]["messages"][-1]["content"] and "<|im_end|>" not in received[1]["body"]["messages"][-1]["content"]


def test_tool_calls_and_json_keep_their_field_scores_whatever_the_judge(endpoint):
    judge = Judge(JudgeConfig(base_url=endpoint[0], model="grader"))
    reply = '{"name": "route_ticket", "arguments": {"queue": "billing"}}'
    assert list(score_replies("tool", [reply], [reply], judge=judge)["score"]) == [1.0]
    assert endpoint[1] == []


def test_a_judge_that_gives_no_score_is_an_error_not_a_zero(endpoint):
    judge = Judge(JudgeConfig(base_url=endpoint[0], model="grader"))
    with pytest.raises(JudgeError, match="answered 'I cannot tell.', not a score"):
        judge(["q"], ["the reference"], [""])


def test_the_judge_is_off_unless_configured_and_needs_a_model(tmp_path, endpoint):
    assert judge_from(JudgeConfig()) is None
    config = tmp_path / "config.yaml"
    config.write_text(f"judge: {{base_url: '{endpoint[0]}', model: grader}}\n")
    assert judge_from(Settings.from_env({"SLM_CONFIG": str(config)}).judge).model == "grader"
    assert judge_from(Settings.from_env({}).judge) is None
    with pytest.raises(JudgeError, match="no model"):
        Judge(JudgeConfig(base_url=endpoint[0]))
