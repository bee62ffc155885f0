"""The review database: users and groups, imported prompts/responses/judge verdicts, review items,
human reviews and skips, the audit log, login sessions and login attempts (SQLAlchemy 2.0 typed ORM).

The schema is created and changed by the Alembic migrations in ``review/migrations``; a test
checks that these models and the migrations agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC on every backend and read back timezone-aware (UTC)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; use carealign.review.models.utcnow()")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Role(StrEnum):
    """What a user may do: reviewers review; admins also import, export and manage users."""

    REVIEWER = "reviewer"
    ADMIN = "admin"


class ItemKind(StrEnum):
    """A review item labels one response (``label``) or compares two responses to one prompt (``pair``)."""

    LABEL = "label"
    PAIR = "pair"


class ItemStatus(StrEnum):
    """``open``: waiting for reviews; ``adjudicate``: reviewers disagree; ``done``: decided."""

    OPEN = "open"
    ADJUDICATE = "adjudicate"
    DONE = "done"


class Choice(StrEnum):
    """A pairwise choice: response A is better, response B is better, or neither (tie)."""

    A = "a"
    B = "b"
    TIE = "tie"


class Decision(StrEnum):
    """How an item's final value was reached."""

    SINGLE = "single"  # one review was required and given
    AGREED = "agreed"  # two reviews were required and agree
    ADJUDICATED = "adjudicated"  # reviewers disagreed (or an admin overruled) and an adjudicator decided


class Base(DeclarativeBase):
    """Declarative base with constraint names Alembic can rely on."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Membership(Base):
    """A user belongs to a stakeholder group and sees that group's queue."""

    __tablename__ = "memberships"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)


class User(Base):
    """A person who logs in. Passwords are stored as Argon2id hashes only."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.REVIEWER.value)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    groups: Mapped[list[Group]] = relationship(secondary="memberships", back_populates="members", order_by="Group.name")

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN.value


class Group(Base):
    """A stakeholder group (clinicians, patient advocates, compliance...): its own queue and safety policy."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    reviews_required: Mapped[int] = mapped_column(Integer, default=1)
    policy_text: Mapped[str | None] = mapped_column(Text, default=None)
    #: Blind review: judges' verdicts are hidden from a reviewer until they have given their own.
    blind: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    members: Mapped[list[User]] = relationship(secondary="memberships", back_populates="groups", order_by="User.name")


class Prompt(Base):
    """A prompt with its CARES annotations. ``key`` is the source's prompt id (or a hash of the text)."""

    __tablename__ = "prompts"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    text: Mapped[str] = mapped_column(Text)
    text_sha256: Mapped[str] = mapped_column(String(64))
    harm_level: Mapped[int | None] = mapped_column(Integer, default=None)
    principle: Mapped[str | None] = mapped_column(String(128), default=None)
    method: Mapped[str | None] = mapped_column(String(32), default=None)
    base_prompt_id: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Response(Base):
    """One assistant response to a prompt; identical texts to one prompt are stored once."""

    __tablename__ = "responses"
    __table_args__ = (UniqueConstraint("prompt_id", "text_sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    text_sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(512))
    model: Mapped[str | None] = mapped_column(String(255), default=None)
    sample: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    prompt: Mapped[Prompt] = relationship()
    verdicts: Mapped[list[JudgeVerdict]] = relationship(order_by="JudgeVerdict.judge", back_populates="response")


class JudgeVerdict(Base):
    """A judge's verdict on a response (one row per judge identity)."""

    __tablename__ = "judge_verdicts"
    __table_args__ = (UniqueConstraint("response_id", "judge"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id"))
    judge: Mapped[str] = mapped_column(String(255))
    verdict: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[float | None] = mapped_column(Float, default=None)
    source: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    response: Mapped[Response] = relationship(back_populates="verdicts")


class Item(Base):
    """A unit of review work in one group's queue: a response to label, or two responses to compare.

    ``version`` increases on every change; a form posts the version it showed, and a stale one
    is refused (HTTP 409) rather than silently overwriting someone else's change.
    """

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("group_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"))
    key: Mapped[str] = mapped_column(String(64))  # "label:<response id>" or "pair:<a id>:<b id>"
    kind: Mapped[str] = mapped_column(String(8))
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"))
    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id"))
    response_b_id: Mapped[int | None] = mapped_column(ForeignKey("responses.id"), default=None)
    required_reviews: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default=ItemStatus.OPEN.value)
    priority: Mapped[float] = mapped_column(Float, default=0.0)
    priority_reasons: Mapped[str] = mapped_column(String(512), default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    final_verdict: Mapped[str | None] = mapped_column(String(16), default=None)
    final_choice: Mapped[str | None] = mapped_column(String(8), default=None)
    final_response: Mapped[str | None] = mapped_column(Text, default=None)
    final_note: Mapped[str | None] = mapped_column(Text, default=None)
    decision: Mapped[str | None] = mapped_column(String(16), default=None)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    claimed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    group: Mapped[Group] = relationship()
    prompt: Mapped[Prompt] = relationship()
    response: Mapped[Response] = relationship(foreign_keys=[response_id])
    response_b: Mapped[Response | None] = relationship(foreign_keys=[response_b_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])
    reviews: Mapped[list[Review]] = relationship(order_by="Review.id", back_populates="item")

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (SQLAlchemy reads it once, never mutated)


#: The queue's order (highest priority first, oldest first among equals), served from one index.
Index("ix_items_queue", Item.group_id, Item.status, Item.priority.desc(), Item.id)


class Review(Base):
    """One reviewer's judgement of an item: a verdict (label items) or a choice (pair items),
    an optional corrected response, and a note."""

    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("item_id", "reviewer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    verdict: Mapped[str | None] = mapped_column(String(16), default=None)
    choice: Mapped[str | None] = mapped_column(String(8), default=None)
    corrected_response: Mapped[str | None] = mapped_column(Text, default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    #: The judges' verdicts were hidden from the reviewer when this review was first given.
    blind: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    item: Mapped[Item] = relationship(back_populates="reviews")
    reviewer: Mapped[User] = relationship()


class ReviewSkip(Base):
    """A reviewer skipped an item: "next" offers it to them again only when nothing else is left."""

    __tablename__ = "review_skips"

    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """Who changed what, when: every change to users, groups, items and reviews, with old and new value."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id"), default=None, index=True)
    target: Mapped[str | None] = mapped_column(String(255), default=None)
    old_value: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    new_value: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)


class AuthSession(Base):
    """A login session. ``id`` is the SHA-256 of the cookie's token, so a leaked table cannot be replayed."""

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()

    user: Mapped[User] = relationship()


class LoginAttempt(Base):
    """One login attempt, kept for rate limiting (failures per user name and per client address)."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_name_at", "username", "at"),
        Index("ix_login_attempts_ip_at", "ip", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    username: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64))
    ok: Mapped[bool] = mapped_column(Boolean)
    #: The password has been checked (``ok`` is final); an unchecked attempt counts as a failure
    #: for its user name and address, so that simultaneous attempts cannot slip under the limit.
    checked: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
