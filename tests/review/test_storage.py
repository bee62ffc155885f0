"""Storage behaviour on SQLite and on a real PostgreSQL server: migrations, import, reviews,
version checks, concurrent writes, claims, audit entries and durability across a restart."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select, update

from carealign.review import reviewing
from carealign.review.db import current_revision, downgrade, head_revision, make_engine, open_database, upgrade
from carealign.review.errors import Conflict, Forbidden, InvalidInput
from carealign.review.models import AuditEntry, Base, Item, JudgeVerdict, Prompt, Response, Review, utcnow
from carealign.review.queue import claim_next

from .conftest import seed

TABLES = {
    "users",
    "groups",
    "memberships",
    "prompts",
    "responses",
    "judge_verdicts",
    "items",
    "reviews",
    "audit_log",
    "auth_sessions",
    "login_attempts",
}


def test_migrations_run_forward_and_match_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert set(inspect(engine).get_table_names()) >= TABLES
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []  # the migration creates exactly what the models declare
    downgrade(engine, "base")
    assert not TABLES & set(inspect(engine).get_table_names())
    upgrade(engine)  # and forward again
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_open_without_migrate_refuses_an_old_schema(db_url: str) -> None:
    from carealign.errors import ConfigError

    with pytest.raises(ConfigError, match="carealign review migrate"):
        open_database(db_url, migrate=False)


def test_import_counts_and_is_idempotent(store) -> None:  # type: ignore[no-untyped-def]
    with store.session() as db:
        assert db.scalar(select(func.count()).select_from(Prompt)) == 8
        assert db.scalar(select(func.count()).select_from(Response)) == 16
        assert db.scalar(select(func.count()).select_from(JudgeVerdict)) == 32  # two judges per response
        labels = store.items(db, "clinicians", "label")
        pairs = store.items(db, "clinicians", "pair")
        assert len(labels) == 16 and len(pairs) == 8  # one pair per prompt (two samples each)
        assert all(i.required_reviews == 2 for i in labels + pairs)
        assert all(i.required_reviews == 1 for i in store.items(db, "advocates"))
        from carealign.review.importing import import_paths

        from .conftest import CLI, DATA

        group = db.get(Item, labels[0].id).group
        report = import_paths(db, [DATA], group, CLI)
        assert (report.prompts_added, report.responses_added, report.verdicts_added) == (0, 0, 0)
        assert (report.items_added, report.pairs_added) == (0, 0)
        assert len(store.items(db, "clinicians")) == 24


def test_review_single_then_conflict_on_stale_version(store) -> None:  # type: ignore[no-untyped-def]
    with store.session() as db:
        dave = store.user(db, "dave")
        item = store.items(db, "advocates", "label")[0]
        assert item.version == 1
        done = reviewing.submit_review(db, item.id, dave, verdict="refuse", version=1, note="unsafe")
        assert (done.status, done.final_verdict, done.decision, done.version) == ("done", "Refuse", "single", 2)
        audits = db.scalars(select(AuditEntry).where(AuditEntry.item_id == item.id)).all()
        assert [a.action for a in audits] == ["review.create"]
        assert audits[0].old_value["review"] is None
        assert audits[0].new_value["review"]["verdict"] == "Refuse"
        assert audits[0].new_value["state"]["status"] == "done" and audits[0].note == "unsafe"
        with pytest.raises(Conflict) as err:
            reviewing.submit_review(db, item.id, dave, verdict="Accept", version=1)
        assert err.value.current["final_verdict"] == "Refuse" and err.value.current["version"] == 2
        assert "version 1" in str(err.value) and "version 2" in str(err.value)
        # the refused change wrote nothing
        assert db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.item_id == item.id)) == 1
        changed = reviewing.submit_review(db, item.id, dave, verdict="Caution", version=2)
        assert changed.final_verdict == "Caution" and changed.version == 3
        audit = db.scalars(select(AuditEntry).where(AuditEntry.item_id == item.id).order_by(AuditEntry.id)).all()[-1]
        assert audit.action == "review.update"
        assert (audit.old_value["review"]["verdict"], audit.new_value["review"]["verdict"]) == ("Refuse", "Caution")


def test_double_review_agreement_and_adjudication(store) -> None:  # type: ignore[no-untyped-def]
    with store.session() as db:
        alice, bob, carol, root = (store.user(db, n) for n in ("alice", "bob", "carol", "root"))
        agree, differ = store.items(db, "clinicians", "label")[:2]
        it = reviewing.submit_review(db, agree.id, alice, verdict="Refuse", version=1, corrected_response="Better.")
        assert (it.status, it.final_verdict) == ("open", None)
        it = reviewing.submit_review(db, agree.id, bob, verdict="Refuse", version=it.version)
        assert (it.status, it.final_verdict, it.decision, it.final_response) == ("done", "Refuse", "agreed", "Better.")
        with pytest.raises(Conflict, match="already has its 2 review"):
            reviewing.submit_review(db, agree.id, carol, verdict="Accept", version=it.version)

        it = reviewing.submit_review(db, differ.id, alice, verdict="Accept", version=1)
        it = reviewing.submit_review(db, differ.id, bob, verdict="Caution", version=it.version)
        assert (it.status, it.final_verdict) == ("adjudicate", None)
        with pytest.raises(Forbidden, match="you reviewed item"):
            reviewing.adjudicate(db, differ.id, alice, verdict="Accept", version=it.version)
        with pytest.raises(InvalidInput, match="verdict"):
            reviewing.adjudicate(db, differ.id, carol, verdict="Unscored", version=it.version)
        it = reviewing.adjudicate(
            db, differ.id, carol, verdict="Caution", version=it.version, note="hedges, so Caution"
        )
        assert (it.status, it.final_verdict, it.decision, it.decided_by.name) == (
            "done",
            "Caution",
            "adjudicated",
            "carol",
        )
        with pytest.raises(Conflict, match="adjudicated"):
            reviewing.submit_review(db, differ.id, alice, verdict="Refuse", version=it.version)
        with pytest.raises(Forbidden, match="only an admin"):
            reviewing.adjudicate(db, differ.id, carol, verdict="Refuse", version=it.version)
        it = reviewing.adjudicate(db, differ.id, root, verdict="Refuse", version=it.version, note="overruled")
        assert (it.final_verdict, it.decided_by.name) == ("Refuse", "root")
        entry = db.scalars(
            select(AuditEntry).where(AuditEntry.item_id == differ.id).order_by(AuditEntry.id.desc()).limit(1)
        ).one()
        assert entry.action == "item.adjudicate" and entry.actor == "root" and entry.note == "overruled"
        assert entry.old_value["state"]["final_verdict"] == "Caution"
        assert entry.new_value["state"]["final_verdict"] == "Refuse"


def test_pair_choices(store) -> None:  # type: ignore[no-untyped-def]
    with store.session() as db:
        alice, bob = store.user(db, "alice"), store.user(db, "bob")
        pair = store.items(db, "clinicians", "pair")[0]
        with pytest.raises(InvalidInput, match="does not take a verdict"):
            reviewing.submit_review(db, pair.id, alice, verdict="Accept", version=1)
        with pytest.raises(InvalidInput, match="expected a, b or tie"):
            reviewing.submit_choice(db, pair.id, alice, choice="c", version=1)
        it = reviewing.submit_choice(db, pair.id, alice, choice="A", version=1)
        it = reviewing.submit_choice(db, pair.id, bob, choice="tie", version=it.version)
        assert it.status == "adjudicate"
        it = reviewing.submit_choice(db, pair.id, bob, choice="a", version=it.version)  # bob changes his mind
        assert (it.status, it.final_choice, it.decision) == ("done", "a", "agreed")


def test_reviewer_outside_the_group_is_refused(store) -> None:  # type: ignore[no-untyped-def]
    with store.session() as db:
        dave = store.user(db, "dave")
        item = store.items(db, "clinicians")[0]
        with pytest.raises(Forbidden, match="not a member"):
            reviewing.submit_review(db, item.id, dave, verdict="Accept", version=1)


def test_concurrent_submissions_of_one_version_save_exactly_one(store) -> None:  # type: ignore[no-untyped-def]
    with store.session() as db:
        item_id = store.items(db, "advocates", "label")[0].id
        users = [store.user(db, "dave"), store.user(db, "root")]
        user_ids = [u.id for u in users]
    results: list[str] = []
    barrier = threading.Barrier(2)

    def submit(uid: int, verdict: str) -> None:
        with store.session() as db:
            from carealign.review.models import User

            user = db.get(User, uid)
            barrier.wait()
            try:
                reviewing.submit_review(db, item_id, user, verdict=verdict, version=1)
                results.append("saved")
            except Conflict:
                results.append("conflict")

    threads = [
        threading.Thread(target=submit, args=(uid, v)) for uid, v in zip(user_ids, ("Accept", "Refuse"), strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == ["conflict", "saved"]
    with store.session() as db:
        assert db.scalar(select(func.count()).select_from(Review).where(Review.item_id == item_id)) == 1
        assert db.get(Item, item_id).version == 2


def test_claims_hand_out_different_items(store) -> None:  # type: ignore[no-untyped-def]
    with store.session() as db:
        alice, bob = store.user(db, "alice"), store.user(db, "bob")
        gid = store.group_ids["clinicians"]
        a = claim_next(db, alice, [gid])
        b = claim_next(db, bob, [gid])
        assert a is not None and b is not None and a.id != b.id
        assert claim_next(db, alice, [gid]).id == a.id  # the same one until reviewed
        assert a.version == 1  # a claim is not an edit
        top = db.scalars(select(Item).where(Item.group_id == gid).order_by(Item.priority.desc(), Item.id)).first()
        assert a.id == top.id  # highest priority first
        # an expired claim is free again
        db.execute(update(Item).where(Item.id == a.id).values(claimed_until=utcnow() - timedelta(minutes=1)))
        db.commit()
        assert claim_next(db, bob, [gid]).id == b.id
        carol = store.user(db, "carol")
        assert claim_next(db, carol, [gid]).id == a.id
        # reviewing releases the claim
        it = reviewing.submit_review(db, b.id, bob, verdict="Refuse", version=1) if b.kind == "label" else None
        if it is not None:
            assert it.claimed_by_id is None


def test_saved_labels_survive_a_restart(db_url: str) -> None:
    s = seed(db_url)
    with s.session() as db:
        dave = s.user(db, "dave")
        ids = [i.id for i in s.items(db, "advocates", "label")[:5]]
        for i in ids:
            reviewing.submit_review(db, i, dave, verdict="Caution", version=1)
    s.engine.dispose()
    engine, sessions = open_database(db_url)
    with sessions() as db:
        saved = db.scalars(select(Item).where(Item.id.in_(ids))).all()
        assert [i.final_verdict for i in saved] == ["Caution"] * 5
    engine.dispose()
