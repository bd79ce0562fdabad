from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """The request's input and the reply on a spend row (general_settings.store_prompts_in_spend_logs)."""

    dependencies = [("gateway", "0004_dead_letters")]

    initial = False

    operations = [
        ops.AddField(model_name="SpendLog", name="messages", field=fields.JSONField(null=True)),
        ops.AddField(model_name="SpendLog", name="response", field=fields.JSONField(null=True)),
    ]
