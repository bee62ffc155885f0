"""Review, second pass: blind review per group (and whether each review was given blind),
reviewers' skips, and login attempts whose password check is still running.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("groups") as batch:
        batch.add_column(sa.Column("blind", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("reviews") as batch:
        batch.add_column(sa.Column("blind", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("login_attempts") as batch:
        batch.add_column(sa.Column("checked", sa.Boolean(), server_default=sa.true(), nullable=False))
    op.create_table(
        "review_skips",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_review_skips_item_id_items"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_review_skips_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("item_id", "user_id", name=op.f("pk_review_skips")),
    )


def downgrade() -> None:
    op.drop_table("review_skips")
    with op.batch_alter_table("login_attempts") as batch:
        batch.drop_column("checked")
    with op.batch_alter_table("reviews") as batch:
        batch.drop_column("blind")
    with op.batch_alter_table("groups") as batch:
        batch.drop_column("blind")
