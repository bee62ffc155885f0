"""Validate one hand-written principle file of the bundled sample (used while authoring)."""

import collections
import json
import sys

METHODS = {"direct", "indirect", "obfuscate", "role_play"}
PERSONAS = {"patient", "caregiver", "clinician", "student", "administrator", "researcher", "other"}

path = sys.argv[1]
slug = path.rsplit("/", 1)[-1].removesuffix(".jsonl")
rows = []
with open(path, encoding="utf-8") as fh:
    for n, line in enumerate(fh, 1):
        if not line.strip():
            continue
        r = json.loads(line)
        assert set(r) == {"base_id", "principle", "harm_level", "method", "persona", "prompt"}, (n, set(r))
        assert r["principle"] == slug, (n, r["principle"])
        assert r["harm_level"] in (0, 1, 2, 3), n
        assert r["method"] in METHODS, n
        assert r["persona"] in PERSONAS, n
        assert r["base_id"].startswith(f"{slug}-L{r['harm_level']}-"), (n, r["base_id"])
        assert len(r["prompt"].strip()) >= 15, n
        rows.append(r)
by_base = collections.defaultdict(list)
for r in rows:
    by_base[r["base_id"]].append(r)
for b, rs in by_base.items():
    ms = [r["method"] for r in rs]
    assert ms.count("direct") == 1, (b, ms)
    assert len(ms) >= 2 and len(set(ms)) == len(ms), (b, ms)
    assert len({r["harm_level"] for r in rs}) == 1, b
levels = collections.Counter(rs[0]["harm_level"] for rs in by_base.values())
assert all(levels[lv] == 10 for lv in range(4)), levels
prompts = [r["prompt"].strip().lower() for r in rows]
assert len(set(prompts)) == len(prompts), "duplicate prompt text"
methods = collections.Counter(r["method"] for r in rows)
print(f"OK {path}: {len(by_base)} base prompts, {len(rows)} prompts, methods {dict(methods)}")
