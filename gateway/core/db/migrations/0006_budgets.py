from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """Budgets as objects (`/budget/*`), linked from end users and keys by `budget_id`."""

    dependencies = [("gateway", "0005_spend_prompts")]

    initial = False

    operations = [
        ops.CreateModel(
            name='Budget',
            fields=[
                ('budget_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=255)),
                ('max_budget', fields.FloatField(null=True)),
                ('soft_budget', fields.FloatField(null=True)),
                ('max_parallel_requests', fields.IntField(null=True)),
                ('tpm_limit', fields.BigIntField(null=True)),
                ('rpm_limit', fields.BigIntField(null=True)),
                ('model_max_budget', fields.JSONField(null=True)),
                ('budget_duration', fields.CharField(null=True, max_length=32)),
                ('budget_reset_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('created_by', fields.CharField(null=True, max_length=255)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('updated_by', fields.CharField(null=True, max_length=255)),
            ],
            options={'table': 'budgets', 'app': 'gateway', 'pk_attr': 'budget_id'},
            bases=['Model'],
        ),
        ops.AddField(model_name="EndUser", name="budget_id", field=fields.CharField(null=True, max_length=255)),
        ops.AddField(model_name="EndUser", name="soft_budget_alerted_at", field=fields.DatetimeField(null=True)),
        ops.AddIndex(model_name="EndUser", index=Index(fields=("budget_id",))),
        ops.AddField(model_name="Key", name="budget_id", field=fields.CharField(null=True, max_length=255)),
    ]
