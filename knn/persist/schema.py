"""The project store's tables (SQLAlchemy Core), at each schema version this code knows.

=========  ==================================================================================
table      what a row is
=========  ==================================================================================
knn_schema one row: the schema version (`SCHEMA_VERSION`); newer code migrates, older refuses
projects   a project or a share link's read-only snapshot (`kind`): the hash of its token,
           when it was created and last opened, its settings (JSON), the writer generation
           (the lease: knn.persist.projects) and the bytes its examples take (the quota)
classes    one class of a project: its place in the class order and its name
examples   one example: its class, its vectors (float32, `vectors` x `dim`, its own embedding
           first), its JPEG, its size in bytes, and the batch it came with (one Add, one
           upload, one Record)
=========  ==================================================================================

Version 2 added `examples.batch`: a coach that leaves out a whole upload or Record burst at a
time (issue 31) needs to know which examples came together. Version 1 databases get one batch
per example (their origin is unknown).

Version 3 added the rule to `projects.settings` (`vote`, `centroid_weight`, `centred`), since new
projects no longer get the rule every project had before (issue 31). Projects of an older
database get that rule, the one they were made with: the k nearest examples vote, not centred;
settings that a schema-2 process still writes beside a newer one (a rolling deploy) read the same.
"""

from __future__ import annotations

import sqlalchemy as sa

SCHEMA_VERSION = 3
"""The schema this code writes; it reads and upgrades every older one."""

# BIGINT on PostgreSQL; SQLite's autoincrementing key must be spelled INTEGER PRIMARY KEY.
KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def tables(version: int = SCHEMA_VERSION) -> sa.MetaData:
    """The tables as schema `version` had them (older ones are kept to test their migration)."""
    metadata = sa.MetaData()
    sa.Table("knn_schema", metadata, sa.Column("version", sa.Integer, nullable=False))
    sa.Table(
        "projects",
        metadata,
        sa.Column("id", KEY, primary_key=True),
        sa.Column("key_hash", sa.LargeBinary(32), nullable=False, unique=True),
        sa.Column("kind", sa.String(8), nullable=False),  # "project" or "snapshot"
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("opened", sa.Float, nullable=False, index=True),  # last opened or changed
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.Column("settings", sa.Text, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
    )
    sa.Table(
        "classes",
        metadata,
        sa.Column("id", KEY, primary_key=True),
        sa.Column("project_id", KEY, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.UniqueConstraint("project_id", "name"),
    )
    batch = [sa.Column("batch", sa.BigInteger, nullable=False, server_default="0")] if version >= 2 else []
    sa.Table(
        "examples",
        metadata,
        sa.Column("id", KEY, primary_key=True),
        sa.Column("project_id", KEY, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("class_id", KEY, sa.ForeignKey("classes.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("vectors", sa.Integer, nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=False),
        sa.Column("image", sa.LargeBinary, nullable=True),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        *batch,
    )
    return metadata


METADATA = tables()
schema_version = METADATA.tables["knn_schema"]
projects = METADATA.tables["projects"]
classes = METADATA.tables["classes"]
examples = METADATA.tables["examples"]
