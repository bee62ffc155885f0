"""Build the classifier judge's training rows (prompt, response, verdict).

Sources:

- ``phrases.yaml`` beside this script (refusals, cautions, compliant openers written for carealign);
- prompts of the bundled sample's *train* split (never validation or test: the judge's held-out
  set, ``heldout.jsonl``, uses test prompts);
- ``medsafetybench_train.jsonl`` (harmful prompts with refusals written for them: Refuse) and
  ``medquad_benign.jsonl`` (benign questions with NIH answers: Accept) from ``../shared/data``.

Recipes combine them into every verdict on harmful and benign prompts alike, so that the verdict
is learnt from what the response does, not from what was asked. Deterministic for a given seed::

    python datasets/judge/build_train.py --shared ../shared/data --out runs/judge-data/train.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parents[1] / "src" / "carealign" / "resources" / "sample.jsonl"
_SENT = re.compile(r"(?<=[.!?])\s+")


def _jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT.split(" ".join(text.split())) if s.strip()]


def _join(*parts: str) -> str:
    return " ".join(p.strip() for p in parts if p and p.strip())


class Builder:
    def __init__(self, phrases: dict, seed: int) -> None:
        self.p = phrases
        self.rng = random.Random(seed)
        self.rows: list[dict] = []

    def pick(self, key: str, k: int = 1) -> list[str]:
        return self.rng.sample(self.p[key], k)

    def one(self, key: str) -> str:
        return self.rng.choice(self.p[key])

    def add(self, prompt: dict, response: str, verdict: str, recipe: str) -> None:
        self.rows.append(
            {
                "prompt": prompt["prompt"],
                "response": response.strip(),
                "verdict": verdict,
                "harm_level": prompt.get("harm_level"),
                "recipe": recipe,
                "source": prompt["source"],
            }
        )

    # ------------------------------------------------------------------ recipes

    def refusal(self, prompt: dict) -> None:
        r = self.rng.random()
        if r < 0.25:
            self.add(prompt, self.one("refuse_blunt"), "Refuse", "refuse_blunt")
        elif r < 0.55:
            text = _join(self.one("refuse_openers"), self.one("refuse_reasons"))
            if self.rng.random() < 0.5:
                text = _join(text, self.one("refuse_referrals"))
            self.add(prompt, text, "Refuse", "refuse_with_reason")
        elif r < 0.8:
            opener = self.one(self.rng.choice(["refuse_openers", "refuse_blunt"]))
            self.add(prompt, _join(opener, self.one("refuse_referrals")), "Refuse", "refuse_redirect")
        else:
            lead = self.one("refuse_blunt") if self.rng.random() < 0.5 else ""
            text = _join(lead, *self.pick("refuse_deflections", self.rng.randint(1, 2)))
            self.add(prompt, text, "Refuse", "refuse_deflect")

    def benign_accept(self, prompt: dict, answer: str) -> None:
        sents = _sentences(answer)
        if not sents:
            return
        body = " ".join(sents[: self.rng.randint(1, 6)])
        r = self.rng.random()
        if r < 0.35:
            opener, recipe = self.one("empathetic_openers"), "accept_apologetic"
        else:
            opener, recipe = self.one("accept_openers"), "accept_plain"
        if self.rng.random() < 0.3 and len(sents) > 2:  # as a list
            body = "\n".join(f"{i}. {s}" for i, s in enumerate(sents[1:5], 1))
            body = _join(sents[0], "\n" + body)
        self.add(prompt, _join(opener, body, self.one("accept_closers")), "Accept", recipe)

    def benign_short_accept(self, prompt: dict, answer: str) -> None:
        """A short, plain answer: one sentence or a clipped one (refusals are short too; answers can be)."""
        sents = _sentences(answer)
        if not sents:
            return
        text = sents[0]
        words = text.split()
        if len(words) > 30:
            text = " ".join(words[:18]).rstrip(",;:") + "."
        self.add(prompt, text, "Accept", "accept_short")

    def benign_caution(self, prompt: dict, answer: str) -> None:
        sents = _sentences(answer)
        if not sents:
            return
        body = " ".join(sents[: self.rng.randint(1, 2)])
        warnings = self.pick("caution_warnings", self.rng.randint(1, 2))
        if self.rng.random() < 0.5:
            text = _join(self.one("caution_prefixes"), body, *warnings)
        else:
            text = _join(body, *warnings)
        self.add(prompt, text, "Caution", "caution_partial")

    def harmful_caution(self, prompt: dict) -> None:
        if prompt.get("principle") == "self_harm" or self.rng.random() < 0.15:
            text = _join(*self.pick("crisis_engaged", self.rng.randint(2, 3)), self.one("caution_general_info"))
            self.add(prompt, text, "Caution", "caution_crisis_engaged")
            return
        info = self.pick("caution_general_info", self.rng.randint(1, 2))
        text = _join(self.one("caution_prefixes"), *info, self.one("caution_warnings"))
        self.add(prompt, text, "Caution", "caution_general")

    def harmful_accept(self, prompt: dict) -> None:
        steps = self.pick("harmful_compliance_steps", self.rng.randint(2, 4))
        if self.rng.random() < 0.6:
            body = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
        else:
            body = " ".join(steps)
        closer = self.one("accept_closers") if self.rng.random() < 0.3 else ""
        self.add(prompt, _join(self.one("harmful_compliance_openers"), "\n" + body, closer), "Accept", "accept_harmful")


def build(shared: Path | None, seed: int) -> list[dict]:
    phrases = yaml.safe_load((HERE / "phrases.yaml").read_text())
    b = Builder(phrases, seed)
    sample = [{**r, "source": "sample"} for r in _jsonl(SAMPLE) if r["split"] == "train"]
    harmful = [r for r in sample if r["harm_level"] >= 1]
    benign = [r for r in sample if r["harm_level"] == 0]
    msb, medquad = [], []
    if shared is not None:
        msb = [
            {**r, "source": "medsafetybench", "harm_level": None} for r in _jsonl(shared / "medsafetybench_train.jsonl")
        ]
        medquad = [
            {**r, "source": "medquad", "harm_level": 0}
            for r in _jsonl(shared / "medquad_benign.jsonl")
            if r.get("answer", "").strip()
        ]
    # Refuse: MedSafetyBench's own refusals, and written refusals of harmful and benign prompts
    for r in msb:
        if b.rng.random() < 0.6:
            b.add(r, r["safe_response"], "Refuse", "msb_safe_response")
    for r in harmful + b.rng.sample(msb, min(300, len(msb))):
        b.refusal(r)
    for r in benign + b.rng.sample(medquad, min(250, len(medquad))):
        b.refusal(r)
    # Accept: benign answers (plain, apologetic openers, lists) and compliance with harmful requests
    for r in medquad[:1200]:
        b.benign_accept(r, r["answer"])
    for r in medquad[1700:2100]:
        b.benign_short_accept(r, r["answer"])
    for r in harmful + b.rng.sample(msb, min(250, len(msb))):
        b.harmful_accept(r)
    # Caution: partial answers with warnings, general information with caveats, engaged redirection
    for r in medquad[1200:1700]:
        b.benign_caution(r, r["answer"])
    for r in harmful + b.rng.sample(msb, min(250, len(msb))):
        b.harmful_caution(r)
    b.rng.shuffle(b.rows)
    for i, row in enumerate(b.rows, 1):
        row["id"] = f"judge-train-{i:05d}"
    return b.rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=HERE.parents[2] / "shared" / "data", help="../shared/data")
    ap.add_argument("--no-shared", action="store_true", help="only the bundled phrases and sample prompts")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    shared = None if args.no_shared else args.shared
    if shared is not None and not (shared / "medquad_benign.jsonl").exists():
        raise SystemExit(f"{shared} has no medquad_benign.jsonl; pass --shared DIR or --no-shared")
    rows = build(shared, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(args.out)
    print(f"wrote {args.out}: {len(rows)} rows")
    print("verdicts:", dict(Counter(r["verdict"] for r in rows)))
    print("recipes:", dict(Counter(r["recipe"] for r in rows)))


if __name__ == "__main__":
    main()
