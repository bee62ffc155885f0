"""A run directory's newly promoted policy is picked up without a restart, and each exchange names its policy."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from .conftest import BENIGN, ask, start_gateway


def _manifest(run: Path, current: str | None) -> None:
    """An alignment run's manifest as the run writes it: the base policy, and the promoted one if any."""
    from carealign.rundir import AlignManifest

    m = AlignManifest(config={"policy_model": str(run / "base")}, base_policy=str(run / "base"), current_policy=current)
    m.save(run / "manifest.json")


def test_promotion_is_picked_up_by_the_admin_call(tmp_path: Path, tiny_model_dir: Path, tiny_generator: Any) -> None:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copytree(tiny_model_dir, run / "base")
    _manifest(run, None)
    gw = start_gateway(tmp_path, tiny_generator, model=str(run))
    try:
        client = gw.client()
        first = gw.exchange(ask(client, BENIGN).id)
        assert first is not None and first.policy.split(":", 1)[1].startswith(f"{run / 'base'}#")
        admin = gw.key("ops", admin=True)
        r = httpx.post(gw.server.url + "/admin/reload", headers={"Authorization": f"Bearer {admin}"}, timeout=60)
        assert r.status_code == 200 and r.json()["changed"] is False  # nothing promoted yet

        shutil.copytree(tiny_model_dir, run / "cycle_1" / "policy")  # the run promotes cycle 1's policy
        _manifest(run, "cycle_1/policy")
        r = httpx.post(gw.server.url + "/admin/reload", headers={"Authorization": f"Bearer {gw.key('default')}"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"  # not an admin key
        r = httpx.post(gw.server.url + "/admin/reload", headers={"Authorization": f"Bearer {admin}"}, timeout=60)
        assert r.status_code == 200 and r.json()["changed"] is True
        second = gw.exchange(ask(client, BENIGN).id)
        assert second is not None and second.policy.split(":", 1)[1].startswith(f"{run / 'cycle_1' / 'policy'}#")
        assert second.policy != first.policy
    finally:
        gw.server.stop()


def test_reload_without_a_key_is_refused(tmp_path: Path, tiny_generator: Any) -> None:
    gw = start_gateway(tmp_path, tiny_generator)
    try:
        r = httpx.post(gw.server.url + "/admin/reload")
        assert r.status_code == 401
        with pytest.raises(openai.NotFoundError):
            gw.client().chat.completions.create(model="other", messages=[{"role": "user", "content": "hi"}])
    finally:
        gw.server.stop()
