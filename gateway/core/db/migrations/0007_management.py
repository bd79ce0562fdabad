from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

#: Per key, per tag, per day totals of the spend already logged (the writer keeps them from now on).
BACKFILL = {
    "postgres": "INSERT INTO spend_key_tag_daily (day, api_key, tag, log_count, total_spend) "
                "SELECT (s.start_time AT TIME ZONE 'UTC')::date, s.api_key, t.tag, count(*), sum(s.spend) "
                "FROM spend_logs s, jsonb_array_elements_text(s.request_tags::jsonb) AS t(tag) "
                "WHERE s.api_key IS NOT NULL GROUP BY 1, 2, 3",
    "sqlite": "INSERT INTO spend_key_tag_daily (day, api_key, tag, log_count, total_spend) "
              "SELECT date(s.start_time), s.api_key, j.value, count(*), sum(s.spend) "
              "FROM spend_logs s, json_each(s.request_tags) AS j "
              "WHERE s.api_key IS NOT NULL GROUP BY 1, 2, 3",
}


async def backfill_key_tags(apps, schema_editor) -> None:
    client = schema_editor.client
    await client.execute_script(BACKFILL["postgres" if client.capabilities.dialect == "postgres" else "sqlite"])


async def drop_key_tags(apps, schema_editor) -> None:
    await schema_editor.client.execute_script("DELETE FROM spend_key_tag_daily")


class Migration(migrations.Migration):
    """Management parity (issue 15): organizations and their members, team memberships (in-team spend
    and budgets), models added at runtime, a team's organization, and per-key tag totals."""

    dependencies = [("gateway", "0006_budgets")]

    initial = False

    operations = [
        ops.CreateModel(
            name='Organization',
            fields=[
                ('max_budget', fields.FloatField(null=True)),
                ('spend', fields.FloatField(default=0.0)),
                ('budget_duration', fields.CharField(null=True, max_length=32)),
                ('budget_reset_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('organization_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=255)),
                ('organization_alias', fields.CharField(null=True, max_length=255)),
                ('budget_id', fields.CharField(null=True, max_length=255)),
                ('models', fields.JSONField(default=list)),
                ('metadata', fields.JSONField(default=dict)),
                ('tpm_limit', fields.BigIntField(null=True)),
                ('rpm_limit', fields.BigIntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('created_by', fields.CharField(null=True, max_length=255)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('updated_by', fields.CharField(null=True, max_length=255)),
            ],
            options={'table': 'organizations', 'app': 'gateway', 'pk_attr': 'organization_id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OrganizationMembership',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization_id', fields.CharField(db_index=True, max_length=255)),
                ('user_id', fields.CharField(db_index=True, max_length=255)),
                ('user_role', fields.CharField(default='internal_user', max_length=32)),
                ('spend', fields.FloatField(default=0.0)),
                ('budget_id', fields.CharField(null=True, max_length=255)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'organization_memberships', 'app': 'gateway',
                     'unique_together': (('organization_id', 'user_id'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TeamMembership',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('team_id', fields.CharField(db_index=True, max_length=255)),
                ('user_id', fields.CharField(db_index=True, max_length=255)),
                ('spend', fields.FloatField(default=0.0)),
                ('budget_id', fields.CharField(null=True, max_length=255)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'team_memberships', 'app': 'gateway',
                     'unique_together': (('team_id', 'user_id'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ProxyModel',
            fields=[
                ('model_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=255)),
                ('model_name', fields.CharField(db_index=True, max_length=255)),
                ('litellm_params', fields.TextField()),
                ('model_info', fields.JSONField(default=dict)),
                ('team_id', fields.CharField(null=True, db_index=True, max_length=255)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('created_by', fields.CharField(null=True, max_length=255)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('updated_by', fields.CharField(null=True, max_length=255)),
            ],
            options={'table': 'proxy_models', 'app': 'gateway', 'pk_attr': 'model_id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SpendKeyTagDaily',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('day', fields.DateField()),
                ('api_key', fields.CharField(max_length=64)),
                ('tag', fields.CharField(max_length=255)),
                ('log_count', fields.BigIntField(default=0)),
                ('total_spend', fields.FloatField(default=0.0)),
            ],
            options={'table': 'spend_key_tag_daily', 'app': 'gateway',
                     'unique_together': (('day', 'api_key', 'tag'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AddIndex(model_name="SpendKeyTagDaily", index=Index(fields=("api_key", "day"))),
        ops.RunPython(backfill_key_tags, drop_key_tags),
        ops.AddField(model_name="Team", name="organization_id",
                     field=fields.CharField(null=True, db_index=True, max_length=255)),
    ]
