"""Desk outcomes: when an agent marks a draft's ticket resolved, and who.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("drafts", sa.Column("resolved_at", sa.Text))
    op.add_column("drafts", sa.Column("resolved_by", sa.Text))


def downgrade() -> None:
    raise NotImplementedError("Tailor's migrations are forward-only.")
