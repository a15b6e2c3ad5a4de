#!/usr/bin/env bash
# Runs `facesynth graph run GRAPH --tui ARGS...` in a detached tmux pane the way a person would,
# and saves what the pane shows every INTERVAL seconds until the command exits.
#
#   tests/tui/tmux_capture.sh OUTDIR GRAPH [more `graph run` args...]
#   e.g. tests/tui/tmux_capture.sh /tmp/cap graphs/capture_to_model.yaml --restart
#
# OUTDIR gets pane_NNN.txt (one per capture), final.txt (the pane after the command ended,
# with the run's summary) and exit (EXIT=<code>). Env: COLS (100), ROWS (30), INTERVAL (0.5),
# MAX_S (600), MODE (--tui; empty: the plain console, progress bars). Needs tmux (apt-get install -y tmux).
set -euo pipefail
if [ $# -lt 2 ]; then sed -n '2,11p' "$0"; exit 2; fi
out=$1; graph=$2; shift 2
command -v tmux >/dev/null || { echo "tmux is not installed: apt-get install -y tmux" >&2; exit 3; }
repo=$(cd "$(dirname "$0")/../.." && pwd)
cols=${COLS:-100}; rows=${ROWS:-30}; interval=${INTERVAL:-0.5}; max_s=${MAX_S:-600}; mode=${MODE---tui}
session="facesynth-tui-$$"
mkdir -p "$out"
rm -f "$out"/pane_*.txt "$out/exit" "$out/final.txt"
args=$(printf '%q ' "$@")
tmux new-session -d -s "$session" -x "$cols" -y "$rows" \
  "cd $(printf '%q' "$repo") && TERM=xterm-256color .venv/bin/facesynth graph run $(printf '%q' "$graph") $mode $args; echo EXIT=\$? > $(printf '%q' "$out")/exit; sleep 3600"
trap 'tmux kill-session -t "$session" 2>/dev/null || true' EXIT
start=$(date +%s); i=0
while [ ! -f "$out/exit" ]; do
  sleep "$interval"
  tmux capture-pane -p -t "$session" > "$out/$(printf 'pane_%03d.txt' "$i")" || break
  i=$((i + 1))
  if [ $(( $(date +%s) - start )) -gt "$max_s" ]; then echo "still running after ${max_s}s" >&2; break; fi
done
sleep 0.5
tmux capture-pane -p -t "$session" -S -100 > "$out/final.txt" || true
echo "$i captures in $out; $(cat "$out/exit" 2>/dev/null || echo 'EXIT=?')"
