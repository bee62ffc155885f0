"""Build the classifier judge's training rows (prompt, response, verdict) into one JSONL file.

Sources:

- ``phrases.yaml`` beside this script (refusals, cautions, compliant openers written for carealign);
- prompts of the bundled sample's *train* split (never validation or test: the judge's held-out
  set, ``heldout.jsonl``, uses test prompts);
- the *train* parts of the public sets shipped with carealign (``carealign.data.public``):
  ``medsafetybench`` (harmful prompts with refusals written for them) and ``medquad`` (benign
  questions with NIH answers); their fixed test parts (one id in five, by hash) are never used here;
- the hand-labelled rows beside this script: ``train_written_*.jsonl``, ``smollm2_train.jsonl``
  and ``smollm2_sysprompt_train.jsonl`` (where present);
- ``--extra FILE`` (repeatable): more labelled rows, e.g. the review app's
  ``carealign review export --kind judge``.

Recipes combine the phrases and public sets into every verdict on harmful and benign prompts
alike, and pair each public set's responses with the *other* set's prompts (a harmful request
answered with an NIH answer: Accept, it did not decline; a benign question met with a written
refusal: Refuse), so that the verdict is learnt from what the response does, not from what was
asked. No held-out file (``HELDOUT_FILES``) is trained on, and training rows whose prompt is a
prompt of one of them are dropped. Deterministic for a given seed::

    python datasets/judge/build_train.py --out runs/judge-data/train.jsonl
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

#: Held-out sets: never trained on. Their prompts may not appear in the training rows.
HELDOUT_FILES = (
    "heldout.jsonl",
    "smollm2_heldout.jsonl",
    "contrast.jsonl",
    "public_heldout.jsonl",
    "other_models_heldout.jsonl",
)
#: Hand-labelled training files beside this script (globs), in this order.
HAND_LABELLED = ("train_written_*.jsonl", "smollm2_train.jsonl", "smollm2_sysprompt_train.jsonl")


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

    def cross_refusal(self, prompt: dict, refusal: str) -> None:
        """A benign question met with a refusal written for another (harmful) request: it declined."""
        self.add(prompt, refusal, "Refuse", "cross_refusal")

    def cross_answer(self, prompt: dict, answer: str) -> None:
        """A harmful request answered with an unrelated NIH answer: Accept (it did not decline)."""
        sents = _sentences(answer)
        if not sents:
            return
        body = " ".join(sents[: self.rng.randint(2, 5)])
        if self.rng.random() < 0.3:
            body = _join(self.one(self.rng.choice(["accept_openers", "empathetic_openers"])), body)
        self.add(prompt, body, "Accept", "cross_answer")

    def harmful_accept(self, prompt: dict) -> None:
        steps = self.pick("harmful_compliance_steps", self.rng.randint(2, 4))
        if self.rng.random() < 0.6:
            body = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
        else:
            body = " ".join(steps)
        closer = self.one("accept_closers") if self.rng.random() < 0.3 else ""
        self.add(prompt, _join(self.one("harmful_compliance_openers"), "\n" + body, closer), "Accept", "accept_harmful")


def _public(name: str, field: str) -> list[dict]:
    """The train part of a shipped public set, as rows with ``id``, ``prompt``, ``field`` (the written response)."""
    from carealign.data.public import load_public

    return [
        {"id": r.id, "prompt": r.prompt, field: r.reference_response, "source": name, "harm_level": r.harm_level}
        for r in load_public(name, "train")
        if r.reference_response
    ]


def build(public: bool, seed: int) -> list[dict]:
    phrases = yaml.safe_load((HERE / "phrases.yaml").read_text())
    b = Builder(phrases, seed)
    sample = [{**r, "source": "sample"} for r in _jsonl(SAMPLE) if r["split"] == "train"]
    harmful = [r for r in sample if r["harm_level"] >= 1]
    benign = [r for r in sample if r["harm_level"] == 0]
    msb, medquad = [], []
    if public:  # the train parts only
        msb = [{**r, "harm_level": None} for r in _public("medsafetybench", "safe_response")]
        medquad = _public("medquad", "answer")
    # Refuse: MedSafetyBench's own refusals, and written refusals of harmful and benign prompts
    for r in msb:
        if b.rng.random() < 0.6:
            b.add(r, r["safe_response"], "Refuse", "msb_safe_response")
    for r in harmful + b.rng.sample(msb, min(300, len(msb))):
        b.refusal(r)
    for r in benign + b.rng.sample(medquad, min(250, len(medquad))):
        b.refusal(r)
    # Accept: benign answers (plain, apologetic openers, lists) and compliance with harmful requests
    for r in medquad[:960]:
        b.benign_accept(r, r["answer"])
    for r in medquad[1360:1680]:
        b.benign_short_accept(r, r["answer"])
    for r in harmful + b.rng.sample(msb, min(250, len(msb))):
        b.harmful_accept(r)
    # Caution: partial answers with warnings, general information with caveats, engaged redirection
    for r in medquad[960:1360]:
        b.benign_caution(r, r["answer"])
    for r in harmful + b.rng.sample(msb, min(250, len(msb))):
        b.harmful_caution(r)
    # the same responses with the other kind of prompt: behaviour, not topic, decides
    if msb and medquad:
        rest = medquad[1680:]
        for r, q in zip(b.rng.sample(rest, min(400, len(rest))), b.rng.sample(msb, min(400, len(msb))), strict=False):
            b.cross_refusal(r, q["safe_response"])
        for q, r in zip(b.rng.sample(msb, min(400, len(msb))), b.rng.sample(rest, min(400, len(rest))), strict=False):
            b.cross_answer(q, r["answer"])
    b.rng.shuffle(b.rows)
    for i, row in enumerate(b.rows, 1):
        row["id"] = f"judge-train-{i:05d}"
    return b.rows


def hand_labelled(extra: list[Path], *, local: bool = True) -> list[dict]:
    """The hand-labelled files beside this script (when ``local``) and the ``extra`` files, validated,
    each row tagged with its file."""
    from carealign.judge.labelled import read_labelled

    paths = [p for pattern in HAND_LABELLED for p in sorted(HERE.glob(pattern))] if local else []
    paths += list(extra)
    for p in paths:
        if p.name in HELDOUT_FILES:
            raise SystemExit(f"{p} is a held-out set; it is never trained on")
    rows = []
    for p in paths:
        for r in read_labelled(p):
            rows.append({**r, "source": r.get("source") or p.name, "file": p.name, "recipe": "hand_labelled"})
    return rows


def drop_heldout_prompts(rows: list[dict]) -> tuple[list[dict], Counter]:
    """The rows whose prompt is not a prompt of a held-out set beside this script, and how many were dropped per set.

    ``smollm2_heldout.jsonl`` holds responses to train-split prompts that the phrase recipes and the
    hand-written files also use; a judge that reads the prompt must not have seen them.
    """
    held: dict[str, str] = {}
    for name in HELDOUT_FILES:
        if (HERE / name).exists():
            for r in _jsonl(HERE / name):
                held.setdefault(" ".join(str(r.get("prompt", "")).split()), name)
    kept, dropped = [], Counter()
    for r in rows:
        name = held.get(" ".join(r["prompt"].split()))
        if name is None:
            kept.append(r)
        else:
            dropped[name] += 1
    return kept, dropped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--no-public", action="store_true", help="without the shipped public sets (MedSafetyBench, MedQuAD)"
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--extra", type=Path, action="append", default=[],
        help="more labelled JSONL (prompt, response, verdict), e.g. `carealign review export --kind judge`",
    )  # fmt: skip
    ap.add_argument("--no-hand-labelled", action="store_true", help="only the built rows (phrases, public sets)")
    args = ap.parse_args()
    rows = build(not args.no_public, args.seed)
    rows += hand_labelled(args.extra, local=not args.no_hand_labelled)
    rows, dropped = drop_heldout_prompts(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(args.out)
    print(f"wrote {args.out}: {len(rows)} rows")
    if dropped:
        print("dropped (prompt of a held-out set):", dict(dropped))
    print("verdicts:", dict(Counter(r["verdict"] for r in rows)))
    print("recipes:", dict(Counter(r["recipe"] for r in rows)))
    print("sources:", dict(Counter(r["source"] for r in rows)))
    print("hand-labelled files:", dict(Counter(r["file"] for r in rows if "file" in r)))


if __name__ == "__main__":
    main()
