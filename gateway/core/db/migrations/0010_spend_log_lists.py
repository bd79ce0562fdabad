from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

#: One row per tag of every spend log already written (the writer adds them from now on).
BACKFILL = {
    "postgres": "INSERT INTO spend_log_tags (log_id, tag, start_time, api_key) "
                "SELECT s.id, t.tag, s.start_time, s.api_key "
                "FROM spend_logs s, jsonb_array_elements_text(s.request_tags::jsonb) AS t(tag)",
    "sqlite": "INSERT INTO spend_log_tags (log_id, tag, start_time, api_key) "
              "SELECT s.id, j.value, s.start_time, s.api_key FROM spend_logs s, json_each(s.request_tags) AS j",
}
FILTERED = ("api_key", "user", "team_id", "end_user", "model_group", "status", "blocked_by")


#: The single-column indexes the (column, start_time, id) ones make redundant: each costs every write.
SUPERSEDED = {"api_key": "idx_spend_logs_api_key_bb9a78", "user": "idx_spend_logs_user_c5c396",
              "end_user": "idx_spend_logs_end_use_fc125f", "team_id": "idx_spend_logs_team_id_01863e"}


class DropFieldIndex(ops.AlterField):
    """The field loses `db_index` in the migration state, and the database only loses its index:
    AlterField itself would rebuild the whole table on SQLite (minutes at millions of rows)."""

    def __init__(self, name: str, field, index_name: str) -> None:
        super().__init__(model_name="SpendLog", name=name, field=field)
        self.index_name = index_name

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if state_editor is not None:
            await state_editor.client.execute_script(f'DROP INDEX IF EXISTS "{self.index_name}"')

    async def database_backward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if state_editor is not None:
            await state_editor.client.execute_script(
                f'CREATE INDEX IF NOT EXISTS "{self.index_name}" ON "spend_logs" ("{self.name}")')


async def backfill_log_tags(apps, schema_editor) -> None:
    client = schema_editor.client
    await client.execute_script(BACKFILL["postgres" if client.capabilities.dialect == "postgres" else "sqlite"])


async def drop_log_tags(apps, schema_editor) -> None:
    await schema_editor.client.execute_script("DELETE FROM spend_log_tags")


class Migration(migrations.Migration):
    """The admin UI's request logs at millions of rows: an index per filter of the logs page
    (the filtered column, then the time, then the id: newest first without a sort), replacing the
    single-column ones they make redundant, and the tags of each spend log in a table of their own,
    indexed by tag and time."""

    dependencies = [("gateway", "0009_ui_sessions")]

    initial = False

    operations = [
        *[ops.AddIndex(model_name="SpendLog", index=Index(fields=(column, "start_time", "id"))) for column in FILTERED],
        ops.CreateModel(
            name='SpendLogTag',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('log_id', fields.BigIntField()),
                ('tag', fields.CharField(max_length=255)),
                ('start_time', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('api_key', fields.CharField(null=True, max_length=64)),
            ],
            options={'table': 'spend_log_tags', 'app': 'gateway', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AddIndex(model_name="SpendLogTag", index=Index(fields=("tag", "start_time", "log_id"))),
        ops.AddIndex(model_name="SpendLogTag", index=Index(fields=("api_key", "tag", "start_time", "log_id"))),
        ops.RunPython(backfill_log_tags, drop_log_tags),
        DropFieldIndex("api_key", fields.CharField(max_length=64, null=True), SUPERSEDED["api_key"]),
        *[DropFieldIndex(name, fields.CharField(max_length=255, null=True), SUPERSEDED[name])
          for name in ("user", "end_user", "team_id")],
    ]
