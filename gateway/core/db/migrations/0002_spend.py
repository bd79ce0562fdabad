from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('gateway', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SpendLog',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('request_id', fields.CharField(db_index=True, max_length=255)),
                ('call_type', fields.CharField(max_length=32)),
                ('api_key', fields.CharField(null=True, db_index=True, max_length=64)),
                ('spend', fields.FloatField(default=0.0)),
                ('prompt_tokens', fields.IntField(default=0)),
                ('completion_tokens', fields.IntField(default=0)),
                ('total_tokens', fields.IntField(default=0)),
                ('start_time', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('end_time', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('model', fields.CharField(max_length=255)),
                ('model_group', fields.CharField(null=True, max_length=255)),
                ('api_base', fields.CharField(null=True, max_length=512)),
                ('user', fields.CharField(null=True, db_index=True, max_length=255)),
                ('end_user', fields.CharField(null=True, db_index=True, max_length=255)),
                ('team_id', fields.CharField(null=True, db_index=True, max_length=255)),
                ('request_tags', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('metadata', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('status', fields.CharField(max_length=16)),
                ('http_status', fields.IntField(default=200)),
                ('blocked_by', fields.CharField(null=True, max_length=255)),
                ('usage_estimated', fields.BooleanField(default=False)),
            ],
            options={'table': 'spend_logs', 'app': 'gateway', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SpendTagDaily',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('day', fields.DateField()),
                ('tag', fields.CharField(max_length=255)),
                ('log_count', fields.BigIntField(default=0)),
                ('total_spend', fields.FloatField(default=0.0)),
            ],
            options={'table': 'spend_tag_daily', 'app': 'gateway', 'unique_together': (('day', 'tag'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
