"""The `openai` backend over real HTTP against a stub server on 127.0.0.1: retries (429, 500,
timeout), malformed answers recorded as failures, the cache, bounded concurrency, secrecy."""

import logging

import numpy as np
import pytest

from diffdict.interp.backends import Example, Explanation, make_backend
from diffdict.interp.backends.openai import _retry_after

from openai_stub_server import StubServer

KEY = "sk-test-DO-NOT-LEAK-1234567890"


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("DIFFDICT_TEST_KEY", KEY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with StubServer() as s:
        yield s


def backend(server, tmp_path, **kw):
    cfg = {
        "backend": "openai",
        "base_url": server.base_url,
        "model": "stub-vlm",
        "api_key_env": "DIFFDICT_TEST_KEY",
        "max_retries": 3,
        "backoff_s": 0.01,
        "max_backoff_s": 0.05,
        "timeout_s": 0.5,
        "max_concurrency": 2,
        "price_prompt_per_1k": 1.0,
        "price_completion_per_1k": 2.0,
        **kw,
    }
    return make_backend(cfg, cache_dir=tmp_path / "cache")


def ex(pid, heat=True):
    rng = np.random.default_rng(pid)
    return Example(
        pid, rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), rng.random((2, 2)) if heat else None, 1.0, 32
    )


def test_retries_then_success(server, tmp_path):
    server.script = ["429", "500", "timeout"]
    e = backend(server, tmp_path).explain(7, [ex(1), ex(2)])
    assert e.ok and e.text == "red circles", e.error
    assert len(server.requests) == 4 and e.usage.requests == 4
    assert e.usage.prompt_tokens == 100 and e.usage.completion_tokens == 10
    assert e.usage.cost == pytest.approx(0.1 + 0.02)
    body = server.requests[-1]["body"]
    assert server.requests[-1]["path"] == "/v1/chat/completions" and body["model"] == "stub-vlm"
    images = [p for m in body["messages"] for p in m["content"] if p["type"] == "image_url"]
    assert len(images) == 2 and images[0]["image_url"]["url"].startswith("data:image/png;base64,")


def test_exhausted_retries_and_bad_bodies_are_failures(server, tmp_path):
    b = backend(server, tmp_path, max_retries=1)
    server.script = ["500", "500"]
    e = b.explain(1, [ex(1)])
    assert not e.ok and "HTTP 500" in e.error and e.usage.requests == 2
    server.script = ["badbody"]
    e = b.explain(1, [ex(1)])
    assert not e.ok and "malformed response" in e.error
    # failures are not cached: the next call asks again and succeeds
    n = len(server.requests)
    assert b.explain(1, [ex(1)]).ok and len(server.requests) == n + 1


@pytest.mark.parametrize("fault", ["truncated", "badstatus", "reset", "html"])
def test_transport_faults_are_retried(server, tmp_path, fault):
    server.script = [fault]
    e = backend(server, tmp_path).explain(3, [ex(1)])
    assert e.ok and e.text == "red circles" and e.usage.requests == 2, e.error


@pytest.mark.parametrize("fault", ["truncated", "badstatus", "reset", "html", "html200", "nochoices"])
def test_persistent_faults_end_as_counted_failures(server, tmp_path, fault):
    server.script = [fault] * 3
    e = backend(server, tmp_path, max_retries=2).explain(3, [ex(1)])
    assert not e.ok and e.error and e.usage.requests >= 1


def test_enormous_answer_is_a_counted_failure_without_retries(server, tmp_path):
    server.script = ["enormous"]
    e = backend(server, tmp_path, max_response_bytes=1 << 20).explain(3, [ex(1)])
    assert not e.ok and "max_response_bytes" in e.error and e.usage.requests == 1


def test_null_content_is_an_empty_answer_not_a_crash(server, tmp_path):
    server.script = ["nullcontent"]
    e = backend(server, tmp_path).explain(3, [ex(1)])
    assert not e.ok or e.text == ""


def test_unparsable_judge_answer_is_a_recorded_failure(server, tmp_path):
    b = backend(server, tmp_path)
    server.script = ["garbage"]
    j = b.judge(Explanation(1, "red circles"), ex(3, heat=False))
    assert not j.ok and j.score is None and j.error.startswith("parse:")
    assert j.usage.tokens == 110  # the answer was paid for
    ok = b.judge(Explanation(1, "red circles"), ex(4, heat=False))
    assert ok.ok and ok.score == pytest.approx(0.9)


def test_cache_and_concurrency(server, tmp_path):
    server.delay_s = 0.05
    b = backend(server, tmp_path, max_concurrency=2)
    items = [(Explanation(1, "red circles"), ex(p, heat=False)) for p in range(8)]
    first = b.judge_many(items)
    assert all(j.ok for j in first) and len(server.requests) == 8
    assert server.max_in_flight == 2
    again = backend(server, tmp_path).judge_many(items)  # a fresh backend on the same cache
    assert len(server.requests) == 8, "the cache must answer a rerun"
    assert [j.score for j in again] == [j.score for j in first]
    assert all(j.usage.cached == 1 and j.usage.requests == 0 for j in again)
    # a different model is a different key
    backend(server, tmp_path, model="other").judge(*items[0])
    assert len(server.requests) == 9


def test_api_key_only_in_authorization_header(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    b = backend(server, tmp_path, max_retries=1)
    server.script = ["500", "ok"]
    b.explain(1, [ex(1)])
    b.judge(Explanation(1, "x"), ex(2))
    assert all(r["headers"]["Authorization"] == f"Bearer {KEY}" for r in server.requests)
    assert KEY not in caplog.text and "500" in caplog.text
    for f in (tmp_path / "cache").rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f
    assert KEY not in repr(vars(b))


def test_missing_key_env_and_retry_after(monkeypatch):
    monkeypatch.delenv("DIFFDICT_NOPE", raising=False)
    with pytest.raises(ValueError, match="DIFFDICT_NOPE"):
        make_backend(
            {"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m", "api_key_env": "DIFFDICT_NOPE"}
        )
    assert _retry_after("2") == 2.0 and _retry_after(None) is None and _retry_after("junk") is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: retry now
