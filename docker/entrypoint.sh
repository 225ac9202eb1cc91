#!/bin/sh
# Roles of the stackv2 image:
#   master            Spark standalone master  (SPARK_MASTER_PORT, default 7077; web UI 8080)
#   worker            Spark standalone worker  (SPARK_MASTER_URL; SPARK_WORKER_CORES / SPARK_WORKER_MEMORY)
#   demo              the job: archive the installed distributions into the S3 content store, then run
#                     `stackv2 demo` against SPARK_MASTER_URL (docker/compose.yaml)
#   anything else     executed as is (e.g. `stackv2 run --config /data/run.yaml`, `spark-submit ...`)
set -eu

case "${1:-}" in
  master)
    exec spark-class org.apache.spark.deploy.master.Master \
      --host "$(hostname)" --port "${SPARK_MASTER_PORT:-7077}" --webui-port "${SPARK_MASTER_WEBUI_PORT:-8080}"
    ;;
  worker)
    exec spark-class org.apache.spark.deploy.worker.Worker \
      --host "$(hostname)" --webui-port "${SPARK_WORKER_WEBUI_PORT:-8081}" \
      --cores "${SPARK_WORKER_CORES:-2}" --memory "${SPARK_WORKER_MEMORY:-2g}" \
      --work-dir "${SPARK_WORKER_DIR:-/tmp/spark-worker}" "${SPARK_MASTER_URL:?set SPARK_MASTER_URL}"
    ;;
  demo)
    : "${SPARK_MASTER_URL:?set SPARK_MASTER_URL}" "${DEMO_DIR:=/data/demo}" "${CONTENT_STORE:?set CONTENT_STORE}"
    python - <<'PY'
import os
import time
from urllib.parse import urlparse

from stackv2.swh.content_store import make_s3_client

bucket = urlparse(os.environ["CONTENT_STORE"]).netloc
client = make_s3_client()
for attempt in range(60):  # SeaweedFS takes a few seconds to accept requests
    try:
        if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
            client.create_bucket(Bucket=bucket)
        break
    except Exception as e:  # retried until the server answers
        print(f"waiting for S3 ({e.__class__.__name__}) ...", flush=True)
        time.sleep(2)
else:
    raise SystemExit(f"S3 endpoint {os.environ.get('AWS_ENDPOINT_URL_S3')} never answered")
PY
    if [ ! -d "$DEMO_DIR/archive/orc/origin" ]; then
      stackv2 archive build --from-installed --max-repos "${DEMO_MAX_REPOS:-40}" \
        --out "$DEMO_DIR/archive" --content-store "$CONTENT_STORE"
    fi
    exec stackv2 demo --out "$DEMO_DIR" \
      --set "spark.master=$SPARK_MASTER_URL" \
      --set "content_store=$CONTENT_STORE" \
      --set "spark.driver_memory=${SPARK_DRIVER_MEMORY:-2g}" \
      --set "spark.conf={spark.executor.memory: '${SPARK_EXECUTOR_MEMORY:-2g}', spark.driver.host: '$(hostname)'}"
    ;;
  *)
    exec "$@"
    ;;
esac
