from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('gateway', '0002_spend')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SpendDaily',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('day', fields.DateField()),
                ('api_key', fields.CharField(default='', max_length=64)),
                ('model', fields.CharField(max_length=255)),
                ('user', fields.CharField(default='', max_length=255)),
                ('log_count', fields.BigIntField(default=0)),
                ('total_spend', fields.FloatField(default=0.0)),
            ],
            options={'table': 'spend_daily', 'app': 'gateway', 'unique_together': (('day', 'api_key', 'model', 'user'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
