#!/usr/bin/env bash
# Every event in infra/events/ through `cargo lambda watch` + `cargo lambda invoke`, as a
# developer runs the functions locally, against the moto server whose URL is in
# AWS_ENDPOINT_URL (tests/run.sh starts it). Needs cargo-lambda on PATH (the test venv).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${AWS_ENDPOINT_URL:?start moto first (tests/run.sh does)}"

prefix="invoke-$(date +%s%N)"
cargo build --quiet -p hookline-infra --bin hookline-bootstrap -p hookline --bin hookline
resources=$(target/debug/hookline-bootstrap "$prefix")
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$resources" "$1"; }
export HOOKLINE_TABLE=$prefix
export HOOKLINE_EVENTS_QUEUE_URL=$(field eventsQueueUrl)
export HOOKLINE_EVENTS_DLQ_URL=$(field eventsDlqUrl)
export HOOKLINE_DELIVERIES_QUEUE_URL=$(field deliveriesQueueUrl)
export HOOKLINE_DELIVERIES_DLQ_URL=$(field deliveriesDlqUrl)
export HOOKLINE_ORDERED_DELIVERIES_QUEUE_URL=$(field orderedDeliveriesQueueUrl)
export HOOKLINE_ORDERED_DELIVERIES_DLQ_URL=$(field orderedDeliveriesDlqUrl)
export HOOKLINE_KMS_KEY_ID=$(field kmsKeyId)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
cargo lambda watch --invoke-port "$port" > target/lambda-watch.log 2>&1 &
watch_pid=$!
trap 'kill $watch_pid 2>/dev/null; wait $watch_pid 2>/dev/null' EXIT
for _ in $(seq 100); do grep -q "starting Runtime server" target/lambda-watch.log && break; sleep 0.2; done

failures=0
# invoke FUNCTION FILE CHECK: CHECK is a Python expression over the parsed response `r`.
invoke() {
  local out
  if ! out=$(cargo lambda invoke "$1" --invoke-port "$port" --data-file "infra/events/$2" 2>&1); then
    echo "FAILED: cargo lambda invoke $1 --data-file infra/events/$2: $out"; failures=$((failures + 1)); return
  fi
  if python3 -c "import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if ($3) else 1)" "$out"; then
    echo "ok: $1 <- $2"
  else
    echo "FAILED: $1 <- $2: expected $3, got $out"; failures=$((failures + 1))
  fi
}

invoke api api-event-types.json 'r["statusCode"] == 200 and len(json.loads(r["body"])["items"]) >= 10'
invoke api api-list-webhooks-no-token.json 'r["statusCode"] == 401'
invoke api api-list-webhooks.json 'r["statusCode"] == 200 and json.loads(r["body"])["items"] == []'
invoke api api-create-webhook-forbidden.json 'r["statusCode"] == 403'
# The fixture's endpoint (crm.example.com) cannot be reached from a machine without network:
# the save is refused by endpoint verification, which is what this checks.
invoke api api-create-webhook.json 'r["statusCode"] == 422 and "endpoint-verification-failed" in r["body"]'
invoke api api-publish-event.json 'r["statusCode"] == 202 and json.loads(r["body"])["id"] == "evt_01JDK7Z3Q8W6V0N4B2C9D5E7F1"'
# GraphQL: the public registerWebhook example at the root, refused by the same endpoint check.
invoke api api-graphql-register-webhook.json 'r["statusCode"] == 200 and json.loads(r["body"])["data"]["registerWebhook"]["code"] == "ENDPOINT_CHECK_FAILED"'
invoke api api-graphql-register-webhook-forbidden.json 'r["statusCode"] == 200 and json.loads(r["body"])["data"]["registerWebhook"]["code"] == "FORBIDDEN"'
invoke api api-graphql-webhooks.json 'r["statusCode"] == 200 and json.loads(r["body"])["data"]["webhooks"]["totalCount"] == 0'
invoke api api-graphql-no-token.json 'r["statusCode"] == 401'
invoke ingest sqs-ingest-batch.json 'r["batchItemFailures"] == []'
invoke api api-revoke-grant.json 'r["statusCode"] == 200 and json.loads(r["body"]) == {"sub": "integrator-1", "appId": "A1", "revoked": True, "webhooks": []}'
invoke ingest sqs-ingest-grant-revoked.json 'r["batchItemFailures"] == []'
invoke deliver sqs-deliver-batch.json 'r["batchItemFailures"] == []'
# A FIFO batch of one ordering group: handled one after the other (a deleted webhook's: skipped).
invoke deliver sqs-deliver-ordered-batch.json 'r["batchItemFailures"] == []'

# Every fixture was invoked above.
for f in infra/events/*.json; do
  grep -q "$(basename "$f")" "$0" || { echo "FAILED: $f is not invoked by $0"; failures=$((failures + 1)); }
done
# The ingest fixture's garbage record went to the events DLQ, with its reason.
dlq_out=$(target/debug/hookline dlq list --aws --queue events 2>&1 || true)
if grep -q "invalid event" <<<"$dlq_out"; then
  echo "ok: events DLQ holds the invalid record"
else
  echo "FAILED: the invalid record is not in the events DLQ: $dlq_out"; failures=$((failures + 1))
fi

passed=$(( $(grep -c '^invoke ' "$0") + 1 - failures ))
echo "lambda invoke: $passed passed, $failures failed"
[ "$failures" -eq 0 ]
