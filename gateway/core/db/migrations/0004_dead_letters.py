from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('gateway', '0003_spend_daily')]

    initial = False

    operations = [
        ops.CreateModel(
            name='DeadLetter',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('created_at', fields.DatetimeField(db_index=True)),
                ('source', fields.CharField(max_length=16, db_index=True)),
                ('ref', fields.CharField(null=True, max_length=255)),
                ('outcome', fields.CharField(max_length=16)),
                ('reason', fields.TextField()),
                ('payload', fields.TextField()),
            ],
            options={'table': 'dead_letters', 'app': 'gateway', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
