"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-12-04
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('app_state',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_app_state'))
    )
    op.create_table('check_suite',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('repo', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('head_sha', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('head_branch', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('app_slug', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('conclusion', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('updated_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_check_suite'))
    )
    with op.batch_alter_table('check_suite', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_check_suite_repo'), ['repo'], unique=False)

    op.create_table('delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('event', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('installation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('repository', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('received_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('processed_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery')),
    sa.UniqueConstraint('delivery_id', name=op.f('uq_delivery_delivery_id'))
    )
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_status_id', ['status', 'id'], unique=False)

    op.create_table('deployment',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('repo', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('environment', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('ref', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('sha', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('task', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('creator', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('state_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('updated_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deployment'))
    )
    with op.batch_alter_table('deployment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deployment_repo'), ['repo'], unique=False)

    op.create_table('installation',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('account_login', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('account_type', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('updated_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_installation'))
    )
    op.create_table('job',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('run_attempt', sa.Integer(), nullable=False),
    sa.Column('repo', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('workflow_name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('head_branch', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('head_sha', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('runner_name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('runner_group_name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('conclusion', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('started_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('queue_s', sa.Float(), nullable=True),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('html_url', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('updated_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job'))
    )
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_repo'), ['repo'], unique=False)
        batch_op.create_index(batch_op.f('ix_job_run_id'), ['run_id'], unique=False)

    op.create_table('metric',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('metric_type', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('timestamp', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('repo', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('workflow', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('branch', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('conclusion', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('source_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_metric')),
    sa.UniqueConstraint('source_key', name=op.f('uq_metric_source_key'))
    )
    with op.batch_alter_table('metric', schema=None) as batch_op:
        batch_op.create_index('ix_metric_type_repo_time', ['metric_type', 'repo', 'timestamp'], unique=False)
        batch_op.create_index('ix_metric_type_time', ['metric_type', 'timestamp'], unique=False)

    op.create_table('pull_request',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('repo', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('title', sa.Text(), nullable=True),
    sa.Column('head_sha', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('head_ref', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('head_repository', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('base_ref', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('html_url', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('updated_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pull_request'))
    )
    with op.batch_alter_table('pull_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pull_request_head_sha'), ['head_sha'], unique=False)
        batch_op.create_index(batch_op.f('ix_pull_request_repo'), ['repo'], unique=False)

    op.create_table('release',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('repo', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('tag_name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('draft', sa.Boolean(), nullable=False),
    sa.Column('prerelease', sa.Boolean(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('author', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('html_url', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('published_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_release'))
    )
    with op.batch_alter_table('release', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_release_repo'), ['repo'], unique=False)

    op.create_table('repository',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('full_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('installation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('default_branch', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('private', sa.Boolean(), nullable=False),
    sa.Column('removed', sa.Boolean(), nullable=False),
    sa.Column('updated_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_repository'))
    )
    with op.batch_alter_table('repository', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_repository_full_name'), ['full_name'], unique=False)
        batch_op.create_index(batch_op.f('ix_repository_installation_id'), ['installation_id'], unique=False)

    op.create_table('run_attempt',
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('conclusion', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('triggering_actor', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('run_started_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('updated_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('run_id', 'attempt', name=op.f('pk_run_attempt'))
    )
    op.create_table('step',
    sa.Column('job_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('conclusion', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('started_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('job_id', 'number', name=op.f('pk_step'))
    )
    op.create_table('tag',
    sa.Column('repo', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('sha', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('pusher', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('pushed_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('repo', 'name', name=op.f('pk_tag'))
    )
    op.create_table('workflow_run',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('repo', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('repository_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('installation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('workflow_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('workflow_name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('workflow_path', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('run_number', sa.Integer(), nullable=True),
    sa.Column('event', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('head_branch', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('head_sha', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('head_repository', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('display_title', sa.Text(), nullable=True),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('html_url', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('latest_attempt', sa.Integer(), nullable=False),
    sa.Column('pull_request_numbers', sa.JSON(), nullable=False),
    sa.Column('updated_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workflow_run'))
    )
    with op.batch_alter_table('workflow_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workflow_run_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_workflow_run_head_sha'), ['head_sha'], unique=False)
        batch_op.create_index(batch_op.f('ix_workflow_run_repo'), ['repo'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('workflow_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workflow_run_repo'))
        batch_op.drop_index(batch_op.f('ix_workflow_run_head_sha'))
        batch_op.drop_index(batch_op.f('ix_workflow_run_created_at'))

    op.drop_table('workflow_run')
    op.drop_table('tag')
    op.drop_table('step')
    op.drop_table('run_attempt')
    with op.batch_alter_table('repository', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_repository_installation_id'))
        batch_op.drop_index(batch_op.f('ix_repository_full_name'))

    op.drop_table('repository')
    with op.batch_alter_table('release', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_release_repo'))

    op.drop_table('release')
    with op.batch_alter_table('pull_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pull_request_repo'))
        batch_op.drop_index(batch_op.f('ix_pull_request_head_sha'))

    op.drop_table('pull_request')
    with op.batch_alter_table('metric', schema=None) as batch_op:
        batch_op.drop_index('ix_metric_type_time')
        batch_op.drop_index('ix_metric_type_repo_time')

    op.drop_table('metric')
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_run_id'))
        batch_op.drop_index(batch_op.f('ix_job_repo'))

    op.drop_table('job')
    op.drop_table('installation')
    with op.batch_alter_table('deployment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deployment_repo'))

    op.drop_table('deployment')
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_status_id')

    op.drop_table('delivery')
    with op.batch_alter_table('check_suite', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_check_suite_repo'))

    op.drop_table('check_suite')
    op.drop_table('app_state')
