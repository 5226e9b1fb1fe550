#!/usr/bin/env bash
# Try the public-demo recipe on this machine, as Streamlit Community Cloud would run it:
#   1. a fresh venv from deploy/requirements.txt (CPU torch from PyTorch's index; where that index
#      cannot be reached, PyPI's torch instead, and the script says so);
#   2. a copy of the repository laid out as a deploy branch would be (deploy/requirements.txt as
#      requirements.txt, deploy/.streamlit/config.toml as .streamlit/config.toml);
#   3. VITREP_PUBLIC=1 streamlit run app.py on a loopback port, wait for /_stcore/health to say ok,
#      print it, render the home page once through Streamlit's AppTest, stop the server.
# Usage: bash deploy/try.sh            (PYTHON=python3.12 PORT=8599 KEEP=1 to change the defaults)
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
PY=${PYTHON:-python3}
PORT=${PORT:-8599}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vitrep-deploy-XXXXXX")
CPU_INDEX=https://download.pytorch.org/whl/cpu
SERVER=""

cleanup() {
  if [ -n "$SERVER" ] && kill -0 "$SERVER" 2>/dev/null; then kill "$SERVER"; wait "$SERVER" 2>/dev/null; fi
  if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT

say() { echo "try.sh: $*"; }

say "python: $($PY --version 2>&1) (Community Cloud defaults to 3.12; choose it under Advanced settings)"
$PY -m venv "$WORK/venv" || { say "could not make a venv with $PY"; exit 1; }
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true

# 1. the requirements, exactly as written if PyTorch's CPU index answers
if "$VPY" - "$CPU_INDEX/torch/" <<'PYEOF' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=15).read(1)
PYEOF
then
  REQS="$HERE/requirements.txt"
  say "PyTorch's CPU index answers: installing deploy/requirements.txt as written"
else
  REQS="$WORK/requirements-pypi.txt"
  grep -v -- '--extra-index-url' "$HERE/requirements.txt" > "$REQS"
  say "NOT TRIED: PyTorch's CPU index ($CPU_INDEX) cannot be reached from this machine."
  say "FALLBACK: installing deploy/requirements.txt without its --extra-index-url line, so torch and"
  say "          torchvision come from PyPI (CUDA builds of the same versions, ~5 GB; they run on the CPU)."
fi
T0=$(date +%s)
if ! "$VPY" -m pip install -q -r "$REQS" > "$WORK/pip.log" 2>&1; then
  say "pip install failed; the last lines:"; tail -20 "$WORK/pip.log"; exit 1
fi
say "installed in $(( $(date +%s) - T0 )) s; venv $(du -sh "$WORK/venv" | cut -f1)"
"$VPY" - <<'PYEOF'
import importlib.metadata as md, torch
print("try.sh: torch", torch.__version__, "| CUDA build" if torch.version.cuda else "| CPU build",
      "| torchvision", md.version("torchvision"), "| streamlit", md.version("streamlit"), "| timm", md.version("timm"))
PYEOF

# 2. the repository as a deploy branch would hold it
mkdir -p "$WORK/app"
(cd "$ROOT" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$WORK/app")
cp "$HERE/requirements.txt" "$WORK/app/requirements.txt"
mkdir -p "$WORK/app/.streamlit" && cp "$HERE/.streamlit/config.toml" "$WORK/app/.streamlit/config.toml"

# 3. the server in public mode, on loopback
cd "$WORK/app"
VITREP_PUBLIC=1 VITREP_CACHE_DIR="$WORK/memo" "$WORK/venv/bin/streamlit" run app.py \
  --server.address 127.0.0.1 --server.port "$PORT" > "$WORK/server.log" 2>&1 &
SERVER=$!
HEALTH=""
for _ in $(seq 1 120); do
  HEALTH=$("$VPY" - "$PORT" <<'PYEOF' 2>/dev/null
import sys, urllib.request
print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/_stcore/health", timeout=2).read().decode())
PYEOF
)
  [ "$HEALTH" = "ok" ] && break
  kill -0 "$SERVER" 2>/dev/null || break
  sleep 1
done
say "GET http://127.0.0.1:$PORT/_stcore/health -> ${HEALTH:-no answer}"
say "server resident set: $(awk '/VmRSS/ {printf "%d MB", $2/1024}' /proc/$SERVER/status 2>/dev/null) (no session yet)"
if [ "$HEALTH" != "ok" ]; then say "server log:"; tail -30 "$WORK/server.log"; exit 1; fi

# the home page once, in the venv (health says the server is up, not that the app runs)
VITREP_PUBLIC=1 VITREP_CACHE_DIR="$WORK/memo" "$VPY" - 2> >(grep -v "missing ScriptRunContext" >&2) <<'PYEOF'
from streamlit.testing.v1 import AppTest
at = AppTest.from_file("app.py", default_timeout=120)
at.run()
print("try.sh: home page under AppTest:", "exception: " + str(at.exception) if at.exception else
      f"rendered, {len(at.markdown)} markdown blocks, title {at.title[0].value if at.title else '-'!r}")
PYEOF
say "server log:"; sed 's/^/    /' "$WORK/server.log" | head -20
say "stopping the server (pid $SERVER)"
