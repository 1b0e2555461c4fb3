"""Shared logic of vision-language backends: prompt -> (cache | model) -> parse.

Raw answers are cached, not parsed results, so a parser fix applies to a rerun at no cost;
a malformed answer is cached too (it is what the model said) and reported as a failure.
Transport failures (retries exhausted) are not cached: a rerun tries again.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Callable, Sequence

from .base import Backend, Example, Explanation, Judgement, Usage
from .cache import ResponseCache, cache_key
from .prompts import ParseError, explain_messages, judge_messages, parse_explanation, parse_score

log = logging.getLogger("diffdict.interp")


class RequestFailed(RuntimeError):
    def __init__(self, msg: str, requests: int):
        super().__init__(msg)
        self.requests = requests


class ChatBackend(Backend):
    price_prompt_per_1k: float = 0.0
    price_completion_per_1k: float = 0.0

    def __init__(self, cache_dir=None):
        self.cache = ResponseCache(cache_dir)

    @property
    @abstractmethod
    def model_name(self) -> str: ...

    @property
    def params(self) -> dict:
        """Request parameters that change the answer (part of the cache key)."""
        return {}

    @abstractmethod
    def _complete(self, messages: list[dict]) -> tuple[str, int, int, int]:
        """Ask the model: -> (text, prompt_tokens, completion_tokens, requests made).
        Raises `RequestFailed` when no answer could be had."""

    def _cost(self, pt: int, ct: int) -> float:
        return pt / 1000 * self.price_prompt_per_1k + ct / 1000 * self.price_completion_per_1k

    def _ask(self, messages: list[dict], parse: Callable[[str], object]):
        """-> (parsed or None, error or None, Usage)."""
        key = cache_key(self.name, self.model_name, messages, self.params)
        hit = self.cache.get(key)
        if hit is not None:
            text, pt, ct = hit["text"], int(hit["prompt_tokens"]), int(hit["completion_tokens"])
            usage = Usage(pt, ct, self._cost(pt, ct), requests=0, cached=1)
        else:
            try:
                text, pt, ct, n = self._complete(messages)
            except RequestFailed as e:
                log.warning("%s: request failed: %s", self.name, e)
                return None, f"request: {e}", Usage(requests=e.requests)
            self.cache.put(key, {"text": text, "prompt_tokens": pt, "completion_tokens": ct, "model": self.model_name})
            usage = Usage(pt, ct, self._cost(pt, ct), requests=n)
        try:
            return parse(text), None, usage
        except ParseError as e:
            log.warning("%s: unparsable answer: %s", self.name, e)
            return None, f"parse: {e}", usage

    def explain(self, feature: int, top: Sequence[Example], negatives: Sequence[Example] = ()) -> Explanation:
        # negatives are not shown: the paper's explainer sees top images only
        text, err, usage = self._ask(explain_messages(top), parse_explanation)
        return Explanation(feature, text or "", ok=err is None, error=err, usage=usage)

    def judge(self, explanation: Explanation, example: Example) -> Judgement:
        score, err, usage = self._ask(judge_messages(explanation.text, example, self.judge_heatmap), parse_score)
        return Judgement(score, ok=err is None, error=err, usage=usage)
