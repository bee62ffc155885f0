"""OpenAI-compatible backend: any server that speaks ``/v1/chat/completions``.

vLLM (``vllm serve``), TGI, llama.cpp's server and hosted APIs all work. Requests run
concurrently up to ``concurrency``; each is retried with exponential backoff on
timeouts, connection errors, 429 and 5xx (the ``openai`` client's own retry logic).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from carealign.errors import ModelError
from carealign.generate.base import Completion, GenerationConfig, ProgressCallback, build_messages


class OpenAIGenerator:
    """Generate through an OpenAI-compatible chat completions endpoint."""

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 4,
        http_client: Any | None = None,
    ) -> None:
        import openai

        self.model = model
        self.base_url = base_url
        self.concurrency = max(1, concurrency)
        api_key = os.environ.get(api_key_env) or "EMPTY"  # local servers accept any key
        self.client = openai.OpenAI(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            http_client=http_client,
        )

    @property
    def identity(self) -> str:
        return f"openai:{self.model}@{self.base_url}"

    def _chat(self, messages: list[dict[str, str]], **kwargs: Any) -> Any:
        import openai

        try:
            return self.client.chat.completions.create(model=self.model, messages=messages, **kwargs)  # type: ignore[arg-type]
        except openai.APIStatusError as exc:
            raise ModelError(f"{self.identity}: HTTP {exc.status_code}: {exc.message}") from None
        except openai.APIError as exc:  # connection errors, timeouts after all retries
            raise ModelError(f"{self.identity}: {type(exc).__name__}: {exc}") from None

    def generate(
        self,
        prompts: Sequence[str],
        config: GenerationConfig,
        progress: ProgressCallback | None = None,
    ) -> list[list[Completion]]:
        """One request per (prompt, sample), ``concurrency`` at a time, in prompt order."""
        return self.generate_chat([build_messages(p, config.system_prompt) for p in prompts], config, progress)

    def generate_chat(
        self,
        conversations: Sequence[list[dict[str, str]]],
        config: GenerationConfig,
        progress: ProgressCallback | None = None,
    ) -> list[list[Completion]]:
        """Like :meth:`generate` for whole conversations."""
        jobs = [(i, s) for i in range(len(conversations)) for s in range(config.samples)]

        def run(job: tuple[int, int]) -> tuple[int, Completion]:
            i, s = job
            kwargs: dict[str, Any] = {"max_tokens": config.max_new_tokens, "temperature": config.temperature}
            if not config.greedy:
                kwargs.update(top_p=config.top_p, seed=config.seed + s)
            resp = self._chat(list(conversations[i]), **kwargs)
            text = (resp.choices[0].message.content or "").strip()
            n_tok = resp.usage.completion_tokens if resp.usage else len(text.split())
            if progress:
                progress(1 if s == config.samples - 1 else 0, n_tok)
            prompt_tok = resp.usage.prompt_tokens if resp.usage else None
            return i, Completion(text=text, n_tokens=n_tok, prompt_tokens=prompt_tok)

        results: list[list[Completion]] = [[] for _ in conversations]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            for i, comp in pool.map(run, jobs):  # map keeps job order, so samples stay ordered
                results[i].append(comp)
        return results

    def label_logprobs(
        self, conversations: Sequence[list[dict[str, str]]], labels: Sequence[str]
    ) -> list[dict[str, float] | None]:
        """Read the first reply token's top log-probs; ``None`` where the server gives none."""

        def run(conv: list[dict[str, str]]) -> dict[str, float] | None:
            resp = self._chat(conv, max_tokens=1, temperature=0, logprobs=True, top_logprobs=20)
            lp = resp.choices[0].logprobs
            if lp is None or not lp.content:
                return None
            top = lp.content[0].top_logprobs or []
            scores = {lab: -math.inf for lab in labels}
            for cand in top:
                tok = cand.token.strip().lower()
                if not tok:
                    continue
                for lab in labels:
                    if lab.lower().startswith(tok) and cand.logprob > scores[lab]:
                        scores[lab] = cand.logprob
            return scores

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(run, conversations))

    def complete_chat(self, conversations: Sequence[list[dict[str, str]]], max_new_tokens: int) -> list[str]:
        def run(conv: list[dict[str, str]]) -> str:
            resp = self._chat(conv, max_tokens=max_new_tokens, temperature=0)
            return (resp.choices[0].message.content or "").strip()

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(run, conversations))
