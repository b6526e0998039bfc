#!/usr/bin/env bash
# A classroom on one machine: N `streamlit run app.py` processes behind HAProxy with sticky sessions.
#
#   deploy/serve.sh 2              # 2 processes on 127.0.0.1:8501-8502, users connect to :8080
#   KNN_LB_BIND=0.0.0.0:8080 KNN_ICE_SERVERS='[...]' deploy/serve.sh 4
#   KNN_DATABASE_URL=postgresql://knn:...@db.example.org/knn deploy/serve.sh 4
#
# Projects: the processes share one store, so a user whose process stops finds their project on
# the next one (docs/scaling.md): SQLite in KNN_DATA_DIR by default (one file on this machine), or
# the PostgreSQL at KNN_DATABASE_URL.
#
# Each process gets KNN_THREADS = cores / N (at least 1) so their model calls do not fight over
# the cores (docs/scaling.md). Any KNN_* setting in the environment reaches every process. Ctrl-C
# stops them all. Browsers give a page its camera only over https (or on localhost): put TLS in
# front, or add "ssl crt <pem>" to the bind line of deploy/haproxy/haproxy.cfg.
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-2}
if ! [[ $n =~ ^[1-8]$ ]]; then
  echo "usage: deploy/serve.sh N   (1 to 8 processes; deploy/haproxy/haproxy.cfg names app1..app8)" >&2
  exit 2
fi
first_port=${KNN_FIRST_PORT:-8501}
cores=$(nproc)
export KNN_THREADS=${KNN_THREADS:-$(( cores / n > 0 ? cores / n : 1 ))}
export KNN_LB_BIND=${KNN_LB_BIND:-127.0.0.1:8080}

pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait; }
trap stop EXIT INT TERM

for i in $(seq 1 "$n"); do
  port=$((first_port + i - 1))
  python3 -m streamlit run app.py --server.headless true --server.address 127.0.0.1 \
    --server.port "$port" --browser.gatherUsageStats false &
  pids+=("$!")
  export "KNN_APP$i=127.0.0.1:$port"
done
# HAProxy's first health checks would find processes still starting and send every user to the
# first one up: start it once all of them answer.
python3 - "$first_port" "$n" <<'PY'
import sys, time, urllib.request
first, n = int(sys.argv[1]), int(sys.argv[2])
for port in range(first, first + n):
    for _ in range(240):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        sys.exit(f"the process on port {port} did not start")
PY
echo "$n processes ($KNN_THREADS model threads each) behind http://$KNN_LB_BIND" >&2
haproxy -db -f deploy/haproxy/haproxy.cfg &
pids+=("$!")
wait -n
