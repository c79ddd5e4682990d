#!/usr/bin/env bash
# The test command (`npm test`): typecheck, lint, then every unit and integration test. The
# integration tests need a real Kafka broker: KAFKA_BROKERS when set, else the local single-node
# broker from infra/kafka, started here (and stopped again) when it is not already running.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${KAFKA_BROKERS:-}" ]; then
  if ! bash infra/kafka/kafka.sh status >/dev/null 2>&1; then
    bash infra/kafka/kafka.sh start
    trap 'bash infra/kafka/kafka.sh stop' EXIT
  fi
  export KAFKA_BROKERS=127.0.0.1:${BREAKID_KAFKA_PORT:-9092}
fi

echo "== typecheck"
npx tsc --noEmit -p .
echo "== lint"
npx biome check .
echo "== tests (Kafka at $KAFKA_BROKERS)"
# each file runs in its own process (chDB binds one data directory per process)
node --import tsx --test --test-timeout=300000 test/unit/*.test.ts test/integration/*.test.ts
