"""Gateway: API keys, the exchange log and its judging queue.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Timestamps are naive UTC on every backend (carealign.review.models.UTCDateTime).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("key_sha256", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("group_name", sa.String(length=64), nullable=True),
        sa.Column("rate_per_minute", sa.Integer(), nullable=False),
        sa.Column("admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_keys")),
        sa.UniqueConstraint("key_sha256", name=op.f("uq_gateway_keys_key_sha256")),
        sa.UniqueConstraint("name", name=op.f("uq_gateway_keys_name")),
    )
    op.create_table(
        "gateway_exchanges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("group_name", sa.String(length=64), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("policy", sa.String(length=512), nullable=False),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("prompt_sha256", sa.String(length=64), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("original_response", sa.Text(), nullable=True),
        sa.Column("guard_action", sa.String(length=16), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("finish_reason", sa.String(length=16), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("generation_ms", sa.Float(), nullable=False),
        sa.Column("redacted", sa.Boolean(), nullable=False),
        sa.Column("harm_level", sa.Integer(), nullable=True),
        sa.Column("harm_confidence", sa.Float(), nullable=True),
        sa.Column("harm_model", sa.String(length=128), nullable=True),
        sa.Column("reviewed_harm_level", sa.Integer(), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("judge", sa.String(length=255), nullable=True),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("judged_at", sa.DateTime(), nullable=True),
        sa.Column("review_item_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["key_id"], ["gateway_keys.id"], name=op.f("fk_gateway_exchanges_key_id_gateway_keys"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["review_item_id"],
            ["items.id"],
            name=op.f("fk_gateway_exchanges_review_item_id_items"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_exchanges")),
        sa.UniqueConstraint("request_id", name=op.f("uq_gateway_exchanges_request_id")),
    )
    with op.batch_alter_table("gateway_exchanges", schema=None) as batch_op:
        batch_op.create_index("ix_gateway_exchanges_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_gateway_exchanges_prompt_sha256", ["prompt_sha256"], unique=False)

    op.create_table(
        "gateway_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exchange_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["exchange_id"],
            ["gateway_exchanges.id"],
            name=op.f("fk_gateway_tasks_exchange_id_gateway_exchanges"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_tasks")),
        sa.UniqueConstraint("exchange_id", name=op.f("uq_gateway_tasks_exchange_id")),
    )


def downgrade() -> None:
    op.drop_table("gateway_tasks")
    with op.batch_alter_table("gateway_exchanges", schema=None) as batch_op:
        batch_op.drop_index("ix_gateway_exchanges_prompt_sha256")
        batch_op.drop_index("ix_gateway_exchanges_created_at")

    op.drop_table("gateway_exchanges")
    op.drop_table("gateway_keys")
