#!/bin/sh
# The image's install step, runnable outside Docker too (tests/test_deployment.py runs it): the core
# and the plugins named in $PLUGINS (directory names under plugins/, space-separated, or "all"),
# exactly as uv.lock pins them. --locked fails the build when uv.lock is out of date instead of
# resolving anew; --no-editable copies the code into the environment, so it needs no source tree.
# Run from the repository root; the environment is $UV_PROJECT_ENVIRONMENT (default .venv).
set -eu
packages="--package gateway"
if [ "${PLUGINS:-}" = all ]; then
  packages="--all-packages"
else
  for plugin in ${PLUGINS:-}; do
    plugin=${plugin#gateway-plugin-}
    if [ ! -f "plugins/$plugin/pyproject.toml" ]; then
      echo "install.sh: no plugin '$plugin' in plugins/; there are: $(cd plugins && echo *)" >&2
      exit 2
    fi
    name=$(sed -n 's/^name = "\(.*\)"$/\1/p' "plugins/$plugin/pyproject.toml" | head -n 1)
    packages="$packages --package $name"
  done
fi
# shellcheck disable=SC2086 # one word per --package flag
exec uv sync --locked --no-dev --no-editable $packages
