#!/bin/sh
# Lints openapi.yaml with Redocly's OpenAPI linter from the npm registry,
# installed once into a tools folder of the build tree (not the repository).
# Usage: lint.sh OPENAPI_YAML TOOLS_DIR
set -eu
spec=$1
tools=$2
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -x "$tools/node_modules/.bin/redocly" ]; then
    mkdir -p "$tools"
    cp "$here/package.json" "$tools/package.json"
    (cd "$tools" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
cd "$here"  # picks up redocly.yaml (the rules we hold the spec to)
exec "$tools/node_modules/.bin/redocly" lint --config "$here/redocly.yaml" "$spec"
