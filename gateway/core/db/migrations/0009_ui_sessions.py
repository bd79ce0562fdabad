from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """Admin UI sessions (`/ui`): one row per login, removed at logout; expired rows are purged."""

    dependencies = [("gateway", "0008_responses")]

    initial = False

    operations = [
        ops.CreateModel(
            name='UISession',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('token', fields.CharField(null=True, db_index=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'ui_sessions', 'app': 'gateway', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
