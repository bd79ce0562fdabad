"""A plugin module that fails to import, as a broken installation would."""

raise ImportError("probe_import_error cannot be imported (on purpose)")
