#!/usr/bin/env bash
# Creates .venv/ in the repository and installs fewshot-bench with everything it needs.
# Idempotent: a second call with unchanged pyproject.toml and this script returns in a second.
# learn2learn 0.2.0 is sdist-only and its shipped C files do not compile on Python >= 3.11, so it is
# rebuilt here: its .c files are regenerated from the .pyx with Cython 3, then installed without
# build isolation and without its unneeded dependencies (qpth, gsutil).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP="$VENV/.fewshot-bench-setup"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
LOG="$VENV/setup.log"
: > "$LOG"
# pip's output goes to .venv/setup.log and is shown only when a step fails.
pip() {
  if ! "$VENV/bin/python" -m pip --disable-pip-version-check "$@" >>"$LOG" 2>&1; then
    grep -v "is ignored: it is neither" "$LOG" | tail -n 40 >&2
    echo "fewshot-bench setup: 'pip $*' failed; full log in $LOG" >&2
    exit 1
  fi
}

echo "fewshot-bench setup: installing torch and dependencies into $VENV (first time: several minutes)" >&2
pip install "torch==2.14.1" "torchvision==0.29.1" "cython>=3,<4" setuptools wheel \
  "numpy>=1.26" scipy requests tqdm "gym==0.26.2"

if ! "$VENV/bin/python" -c "import learn2learn.data.task_dataset" 2>/dev/null; then
  echo "fewshot-bench setup: rebuilding learn2learn 0.2.0 for $("$VENV/bin/python" -V)" >&2
  build=$(mktemp -d)
  trap 'rm -rf "$build"' EXIT
  pip download --no-deps --no-binary :all: "learn2learn==0.2.0" -d "$build"
  tar -xzf "$build"/learn2learn-0.2.0.tar.gz -C "$build"
  src="$build/learn2learn-0.2.0"
  rm -rf "$src/.eggs"
  for pyx in "$src"/learn2learn/data/*.pyx; do
    "$VENV/bin/cython" -3 --directive embedsignature=True "$pyx" -o "${pyx%.pyx}.c" >/dev/null
  done
  pip install --no-build-isolation --no-deps "$src"
fi

# The project itself, without letting pip resolve learn2learn's declared dependencies (qpth and
# gsutil: not needed, and qpth's metadata no longer parses).
deps=$("$VENV/bin/python" - <<'PY'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
wanted = (project["dependencies"] + project["optional-dependencies"]["test"]
          + project["optional-dependencies"]["tensorboard"])  # so CI tests --tensorboard
print("\n".join(d for d in wanted if not d.startswith("learn2learn")))
PY
)
# shellcheck disable=SC2086
pip install $deps
pip install --no-deps -e .
echo "$want" > "$STAMP"
echo "fewshot-bench setup: done ($VENV)" >&2
