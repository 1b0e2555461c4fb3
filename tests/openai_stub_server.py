"""A tiny OpenAI-compatible chat-completions server for tests (stdlib, one thread per request).

`StubServer.script` is a list of actions consumed one per request ("429", "500", "timeout",
"garbage", "empty", "badbody"); with an empty script the server answers normally: an explanation for
explain prompts, ``{"score": s}`` for judge prompts with s = `StubServer.judge_score(request)`.
Every request is recorded (path, headers, JSON body) in `StubServer.requests`.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubServer:
    def __init__(self, explanation: str = "red circles", judge_score=None, sleep_s: float = 2.0, delay_s: float = 0.0):
        self.script: list[str] = []
        self.delay_s = delay_s  # latency of normal answers (to observe concurrency)
        self.in_flight = self.max_in_flight = 0
        self.requests: list[dict] = []
        self.explanation = explanation
        self.judge_score = judge_score or (lambda body: 0.9)
        self.sleep_s = sleep_s
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub._lock:
                    stub.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    action = stub.script.pop(0) if stub.script else "ok"
                if action == "429":
                    return self._send(429, {"error": "rate limited"}, {"Retry-After": "0"})
                if action == "500":
                    return self._send(500, {"error": "boom"})
                if action == "timeout":
                    time.sleep(stub.sleep_s)
                    return self._send(200, _completion("late"))
                if action == "badbody":
                    return self._send(200, None, raw=b"not json")
                if action == "empty":
                    return self._send(200, _completion(""))
                if action == "garbage":
                    return self._send(200, _completion("I cannot tell, maybe 3 or 4"))
                if action == "truncated":  # Content-Length promises more than is sent, then close
                    data = json.dumps(_completion("cut")).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data) + 50))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.close_connection = True
                    return None
                if action == "badstatus":  # not HTTP at all
                    self.wfile.write(b"garbage that is no status line\r\n\r\n")
                    self.close_connection = True
                    return None
                if action == "reset":  # close without answering
                    self.close_connection = True
                    return None
                if action == "html":
                    return self._send(502, None, raw=b"<html><body>Bad gateway</body></html>")
                if action == "html200":
                    return self._send(200, None, raw=b"<html><body>Sign in</body></html>")
                if action == "nochoices":
                    return self._send(200, {"id": "x", "choices": []})
                if action == "enormous":  # a valid completion of 20 MB (a server ignoring max_tokens)
                    return self._send(200, _completion("red " * 5_000_000))
                if action == "nullcontent":
                    return self._send(
                        200, {"id": "x", "choices": [{"message": {"role": "assistant", "content": None}}]}
                    )
                with stub._lock:
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                time.sleep(stub.delay_s)
                with stub._lock:
                    stub.in_flight -= 1
                text = _last_text(body)
                if "explained as" in text:
                    return self._send(200, _completion(json.dumps({"score": stub.judge_score(body)})))
                return self._send(200, _completion(stub.explanation))

            def _send(self, code, obj, headers=None, raw=None):
                data = raw if raw is not None else json.dumps(obj).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # client gave up (timeout)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> StubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _last_text(body: dict) -> str:
    parts = body["messages"][-1]["content"]
    return " ".join(p.get("text", "") for p in parts if p.get("type") == "text")


def _completion(text: str) -> dict:
    return {
        "id": "x",
        "object": "chat.completion",
        "model": "stub",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
    }
