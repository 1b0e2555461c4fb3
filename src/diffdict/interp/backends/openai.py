"""Any OpenAI-compatible chat-completions endpoint with image inputs (vLLM, SGLang, hosted APIs).

stdlib ``urllib`` only (no extra dependency). Retries with exponential backoff and jitter on
429, 408/409, 5xx, timeouts and connection errors, honouring ``Retry-After``; at most
``max_concurrency`` requests in flight. The API key is read from the environment variable
*named* by ``api_key_env`` at request time, sent only in the Authorization header, and
redacted from every error message.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import json
import logging
import os
import random
import time
import urllib.error
import urllib.request

from .chat import ChatBackend, RequestFailed

log = logging.getLogger("diffdict.interp")

RETRY_STATUS = {408, 409, 429}


class OpenAIBackend(ChatBackend):
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = "OPENAI_API_KEY",
        max_concurrency: int = 4,
        timeout_s: float = 60.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        temperature: float = 0.0,
        max_tokens: int = 200,
        price_prompt_per_1k: float = 0.0,
        price_completion_per_1k: float = 0.0,
        judge_heatmap: bool = False,
        extra_body: dict | None = None,
        cache_dir=None,
        seed: int = 0,
        max_response_bytes: int = 8 << 20,
    ):
        super().__init__(cache_dir)
        if not base_url or not model:
            raise ValueError("openai backend needs 'base_url' (e.g. http://localhost:8000/v1) and 'model'")
        if api_key_env and api_key_env not in os.environ:
            raise ValueError(
                f"openai backend: environment variable {api_key_env!r} (api_key_env) is not set; "
                "set it, or set api_key_env: null for endpoints without authentication"
            )
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.max_concurrency = max(1, int(max_concurrency))
        self.timeout_s, self.max_retries = float(timeout_s), int(max_retries)
        self.backoff_s, self.max_backoff_s = float(backoff_s), float(max_backoff_s)
        self.temperature, self.max_tokens = float(temperature), int(max_tokens)
        self.price_prompt_per_1k, self.price_completion_per_1k = (
            float(price_prompt_per_1k),
            float(price_completion_per_1k),
        )
        self.judge_heatmap = bool(judge_heatmap)
        self.extra_body = dict(extra_body or {})
        # A chat answer is kilobytes; a server that streams megabytes (ignoring max_tokens, or a
        # proxy's error dump) is failing, and reading it all would only cost memory.
        self.max_response_bytes = int(max_response_bytes)
        self._rng = random.Random(seed)  # jitter only; never affects results

    @property
    def model_name(self) -> str:
        return self.model

    @property
    def params(self) -> dict:
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, **self.extra_body}

    def _key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def _redact(self, text: str) -> str:
        key = self._key()
        return text.replace(key, "***") if key else text

    @staticmethod
    def _render(messages: list[dict]) -> list[dict]:
        out = []
        for m in messages:
            content = []
            for p in m["parts"]:
                if "png" in p:
                    url = "data:image/png;base64," + base64.b64encode(p["png"]).decode()
                    content.append({"type": "image_url", "image_url": {"url": url}})
                else:
                    content.append({"type": "text", "text": p["text"]})
            out.append({"role": m["role"], "content": content})
        return out

    def _complete(self, messages):
        body = json.dumps({"model": self.model, "messages": self._render(messages), **self.params}).encode()
        headers = {"Content-Type": "application/json"}
        if self._key():
            headers["Authorization"] = f"Bearer {self._key()}"
        last = ""
        for attempt in range(self.max_retries + 1):
            wait = None
            try:
                req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    # a plain read() with a Content-Length raises IncompleteRead on a cut body (retried)
                    declared = resp.length
                    too_big = declared is not None and declared > self.max_response_bytes
                    raw = (
                        b""
                        if too_big
                        else resp.read()
                        if declared is not None
                        else resp.read(self.max_response_bytes + 1)
                    )
                if too_big or len(raw) > self.max_response_bytes:  # not retried: the same question, the same answer
                    raise RequestFailed(
                        f"response larger than max_response_bytes ({self.max_response_bytes})", attempt + 1
                    )
                return (*self._read(raw, attempt + 1), attempt + 1)
            except urllib.error.HTTPError as e:
                try:
                    detail = self._redact(e.read()[:300].decode("utf-8", "replace"))
                except OSError:
                    detail = ""
                last = f"HTTP {e.code}: {detail}"
                if e.code not in RETRY_STATUS and e.code < 500:
                    raise RequestFailed(last, attempt + 1) from None
                wait = _retry_after(e.headers.get("Retry-After") if e.headers else None)
            # HTTPException: IncompleteRead, BadStatusLine, RemoteDisconnected
            except (TimeoutError, urllib.error.URLError, ConnectionError, OSError, http.client.HTTPException) as e:
                last = self._redact(f"{type(e).__name__}: {getattr(e, 'reason', e)}")
            if attempt < self.max_retries:
                delay = min(self.max_backoff_s, self.backoff_s * 2**attempt) * (0.5 + self._rng.random())
                delay = min(self.max_backoff_s, max(delay, wait or 0.0))
                log.info("openai: attempt %d failed (%s); retrying in %.2fs", attempt + 1, last, delay)
                time.sleep(delay)
        raise RequestFailed(f"{self.max_retries + 1} attempts failed; last: {last}", self.max_retries + 1)

    def _read(self, raw: bytes, requests: int) -> tuple[str, int, int]:
        try:
            obj = json.loads(raw)
            msg = obj["choices"][0]["message"]
            text = msg.get("content")
            if isinstance(text, list):  # some servers return content parts
                text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
            usage = obj.get("usage") or {}
            return (text or "", int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
            raise RequestFailed(f"malformed response body ({type(e).__name__}): {raw[:200]!r}", requests) from None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
