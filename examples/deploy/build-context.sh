#!/usr/bin/env bash
# Write a Docker build context that serves a scorer: the scorer folder, the lead-ml
# wheel its requirements.txt pins, and the Dockerfile beside this script.
#
#   examples/deploy/build-context.sh [SCORER_FOLDER] [OUT_FOLDER]
#
# Defaults: models/scorer and build/docker (relative to where it runs). PYTHON: the
# project's venv Python (default .venv/bin/python of this repository). The wheel is
# built from a copy of the sources in a temporary folder: nothing is written in the
# repository but OUT.
set -euo pipefail

scorer=${1:-models/scorer}
out=${2:-build/docker}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}

if [[ ! -f "$scorer/artifacts/bundle/manifest.json" ]]; then
    echo "$scorer: no lead-ml scorer here; run \`lead-ml export\` (or dvc repro) first" >&2
    exit 2
fi
# The scorer is checked whole before it is copied (exit 2 if any file changed).
"$python" -c 'import sys; from lead_ml.scorer import verify_folder; from pathlib import Path; print(verify_folder(Path(sys.argv[1])))' "$scorer"

rm -rf "$out"
mkdir -p "$out/wheels"
cp -R "$scorer" "$out/scorer"
rm -rf "$out/scorer/__pycache__"
cp "$here/Dockerfile" "$out/Dockerfile"
printf '%s\n' '**/__pycache__' > "$out/.dockerignore"

sources=$(mktemp -d)
trap 'rm -rf "$sources"' EXIT
cp "$root/pyproject.toml" "$root/README.md" "$sources/"
mkdir "$sources/src"
cp -R "$root/src/lead_ml" "$sources/src/lead_ml"
find "$sources" -name __pycache__ -type d -prune -exec rm -rf {} +
"$python" -m pip wheel --quiet --no-deps --no-build-isolation \
    --wheel-dir "$out/wheels" "$sources"

# The wheel must be the lead-ml version the scorer pins.
pinned=$(sed -n 's/^lead-ml==\(.*\)$/\1/p' "$out/scorer/requirements.txt")
wheel=$(ls "$out/wheels"/lead_ml-*.whl)
if [[ "$(basename "$wheel")" != "lead_ml-${pinned}-"* ]]; then
    echo "$wheel: the scorer pins lead-ml==$pinned; build the context with that version" >&2
    exit 2
fi
echo "$out: Dockerfile, scorer/, wheels/$(basename "$wheel")"
