from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """Stored Responses API replies (`/v1/responses`): `previous_response_id`, retrieve, delete and
    input items read them; rows are purged by age, hence the index on `created_at`."""

    dependencies = [("gateway", "0007_management")]

    initial = False

    operations = [
        ops.CreateModel(
            name='StoredResponse',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('api_key', fields.CharField(null=True, db_index=True, max_length=64)),
                ('model', fields.CharField(max_length=255)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('status', fields.CharField(max_length=16)),
                ('input_items', fields.JSONField(default=list)),
                ('conversation', fields.JSONField(default=list)),
                ('response', fields.JSONField(default=dict)),
            ],
            options={'table': 'stored_responses', 'app': 'gateway', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
