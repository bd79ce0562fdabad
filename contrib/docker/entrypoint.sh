#!/bin/sh
# The image's entrypoint: `gateway migrate`, then the gateway, whose flags are this script's
# arguments (`--num_workers 4`, `--config /app/config.yaml`, ...).
#
# DISABLE_SCHEMA_UPDATE=true (LiteLLM's variable) skips the migration. Set it wherever one job
# migrates for every instance, as compose.yaml and the Helm chart do: instances that start together
# must not migrate one database at the same time. A PostgreSQL schema older than the code then
# stops the gateway with "run: gateway migrate"; SQLite is migrated by the gateway itself.
#
# A first argument that is not a flag runs that program when the image has it (`sh`), else that
# gateway command (`migrate`, `plugins`, `audit`, ...).
set -eu

case "${1:-}" in
  "" | -*) ;;
  *)
    if command -v "$1" >/dev/null 2>&1; then exec "$@"; fi
    exec gateway "$@"
    ;;
esac

# The config `gateway migrate` must read too: --config/-c among the arguments, else $GATEWAY_CONFIG.
config=""
previous=""
for arg in "$@"; do
  case "$previous" in --config | -c) config=$arg ;; esac
  case "$arg" in --config=*) config=${arg#--config=} ;; esac
  previous=$arg
done
if [ -z "$config" ] && [ -n "${GATEWAY_CONFIG:-}" ] && [ ! -e "$GATEWAY_CONFIG" ]; then
  echo "gateway-entrypoint: no config file at $GATEWAY_CONFIG, so none is read; mount yours there" \
       "(docker run -v \"\$PWD/config.yaml:$GATEWAY_CONFIG:ro\" ...) or pass --config PATH" >&2
  unset GATEWAY_CONFIG
fi

case "$(printf '%s' "${DISABLE_SCHEMA_UPDATE:-}" | tr '[:upper:]' '[:lower:]')" in
  true | 1 | yes | on) ;;
  *) gateway migrate ${config:+--config "$config"} ;;
esac
exec gateway "$@"
