"""Users, roles and stakeholder groups (admins manage them; every change is audited)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from carealign.errors import ConfigError
from carealign.review.audit import Actor, record
from carealign.review.auth import MIN_PASSWORD_LENGTH, end_user_sessions, hash_password, normalize_name
from carealign.review.errors import InvalidInput, NotFound
from carealign.review.models import Group, Role, User
from carealign.review.policies import parse_policy_text

#: A letter or digit of any script, then up to 63 letters, digits, marks, ``_ . @ -``.
_NAME = re.compile(r"^[^\W_][\w.@-]{0,63}$")
#: How many reviews an item of a group may require.
REVIEWS_REQUIRED_CHOICES = (1, 2)


def check_name(name: str, what: str) -> str:
    """A user or group name, in Unicode NFC: 1-64 letters (of any script, ``dr.müller``,
    ``李医生``), digits, ``_ . @ -``, starting with a letter or digit. Spaces, punctuation,
    control and bidirectional characters are refused."""
    if not isinstance(name, str):
        raise InvalidInput(f"{what} name {name!r}: expected text")
    name = normalize_name(name)
    if not _NAME.fullmatch(name) or any(unicodedata.category(ch).startswith("C") for ch in name):
        raise InvalidInput(
            f"{what} name {name!r}: use 1-64 letters (any script), digits, '_', '.', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    """Refuse passwords shorter than :data:`MIN_PASSWORD_LENGTH` characters."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password too short; use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise InvalidInput("password too long; use at most 1024 characters")
    return password


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(f"role {role!r}: expected reviewer or admin") from None


def get_user(db: Session, name: str) -> User:
    user = db.scalar(select(User).where(User.name == normalize_name(name)))
    if user is None:
        raise NotFound(f"no user named {name!r}")
    return user


def get_group(db: Session, name: str) -> Group:
    group = db.scalar(select(Group).where(Group.name == normalize_name(name)))
    if group is None:
        raise NotFound(f"no group named {name!r}")
    return group


def _group_summary(group: Group) -> dict[str, object]:
    return {
        "name": group.name,
        "reviews_required": group.reviews_required,
        "blind": bool(group.blind),
        "policy": group.policy_text,
    }


def create_group(
    db: Session,
    name: str,
    actor: Actor,
    *,
    reviews_required: int = 1,
    policy_text: str | None = None,
    blind: bool = False,
) -> Group:
    """Create a stakeholder group, optionally with its own safety policy (YAML/JSON text) and blind
    review (judges' verdicts hidden until the reviewer decides). Flushes."""
    name = check_name(name, "group")
    if db.scalar(select(Group.id).where(Group.name == name)) is not None:
        raise InvalidInput(f"group {name!r} already exists")
    _check_reviews(reviews_required)
    policy_text = _check_policy(policy_text, name)
    group = Group(name=name, reviews_required=reviews_required, policy_text=policy_text, blind=blind)
    db.add(group)
    db.flush()
    record(db, actor, "group.create", target=f"group:{name}", new=_group_summary(group))
    return group


def ensure_group(db: Session, name: str, actor: Actor) -> tuple[Group, bool]:
    """The group with this name, created (with defaults) when missing; the flag says whether it was created."""
    group = db.scalar(select(Group).where(Group.name == name))
    if group is not None:
        return group, False
    return create_group(db, name, actor), True


def update_group(
    db: Session,
    name: str,
    actor: Actor,
    *,
    reviews_required: int | None = None,
    policy_text: str | None = None,
    clear_policy: bool = False,
    blind: bool | None = None,
) -> Group:
    """Change a group's number of required reviews (for items imported from now on), its policy
    and blind review. Flushes."""
    group = get_group(db, name)
    old = _group_summary(group)
    if reviews_required is not None:
        group.reviews_required = _check_reviews(reviews_required)
    if blind is not None:
        group.blind = blind
    if clear_policy:
        group.policy_text = None
    elif policy_text is not None:
        group.policy_text = _check_policy(policy_text, name)
    new = _group_summary(group)
    if new != old:
        record(db, actor, "group.update", target=f"group:{name}", old=old, new=new)
    db.flush()
    return group


def _check_reviews(n: int) -> int:
    if n not in REVIEWS_REQUIRED_CHOICES:
        raise InvalidInput(f"reviews required {n!r}: expected 1 or 2")
    return n


def _check_policy(text: str | None, group: str) -> str | None:
    if text is None or not text.strip():
        return None
    try:
        parse_policy_text(text, where=f"group {group!r} policy")
    except ConfigError as exc:
        raise InvalidInput(str(exc)) from None
    return text


def _user_summary(user: User) -> dict[str, object]:
    return {"name": user.name, "role": user.role, "active": user.active, "groups": [g.name for g in user.groups]}


def _groups(db: Session, names: Sequence[str]) -> list[Group]:
    return [get_group(db, n) for n in dict.fromkeys(names)]


def create_user(db: Session, name: str, password: str, role: str, actor: Actor, *, groups: Sequence[str] = ()) -> User:
    """Create a user with an Argon2id password hash, a role and group memberships. Flushes."""
    name = check_name(name, "user")
    check_password(password)
    r = check_role(role)
    if db.scalar(select(User.id).where(User.name == name)) is not None:
        raise InvalidInput(f"user {name!r} already exists")
    user = User(name=name, password_hash=hash_password(password), role=r.value, active=True)
    user.groups = _groups(db, groups)
    db.add(user)
    db.flush()
    record(db, actor, "user.create", target=f"user:{name}", new=_user_summary(user))
    return user


def update_user(
    db: Session,
    name: str,
    actor: Actor,
    *,
    role: str | None = None,
    groups: Sequence[str] | None = None,
    active: bool | None = None,
    password: str | None = None,
) -> User:
    """Change a user's role, groups, active flag or password. A password change or deactivation
    ends the user's sessions. The audit log records the change (never the password). Flushes."""
    user = get_user(db, name)
    old = _user_summary(user)
    if user.is_admin and user.active and (role == Role.REVIEWER.value or active is False):
        others = db.scalar(
            select(func.count()).where(User.role == Role.ADMIN.value, User.active.is_(True), User.id != user.id)
        )
        if not others:
            raise InvalidInput(f"{name} is the last active admin; make another admin first")
    if role is not None:
        user.role = check_role(role).value
    if groups is not None:
        user.groups = _groups(db, groups)
    if active is not None:
        user.active = active
    changed_password = False
    if password:
        user.password_hash = hash_password(check_password(password))
        changed_password = True
    if changed_password or active is False:
        end_user_sessions(db, user.id)
    new = _user_summary(user)
    if new != old or changed_password:
        record(
            db,
            actor,
            "user.update",
            target=f"user:{name}",
            old=old,
            new=new,
            note="password changed" if changed_password else None,
        )
    db.flush()
    return user


def list_users(db: Session) -> list[User]:
    return list(db.scalars(select(User).order_by(User.name)))


def list_groups(db: Session) -> list[Group]:
    return list(db.scalars(select(Group).order_by(Group.name)))


def visible_groups(db: Session, user: User) -> list[Group]:
    """The groups whose queues a user sees: all for admins, their own for reviewers."""
    return list_groups(db) if user.is_admin else list(user.groups)


def can_access_group(user: User, group_id: int) -> bool:
    return user.is_admin or any(g.id == group_id for g in user.groups)
