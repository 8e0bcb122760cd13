# Two requests to POST /v1/jobs, as a batch: each line's body is a job's request.
cat > jobs.jsonl <<'JSONL'
{"custom_id": "front", "method": "POST", "url": "/v1/jobs", "body": {"prompt": "a red bicycle, front view", "tier": "low-cost"}}
{"custom_id": "side", "method": "POST", "url": "/v1/jobs", "body": {"prompt": "a red bicycle, side view", "tier": "low-cost"}}
JSONL

genline batches submit jobs.jsonl --endpoint /v1/jobs --output results.jsonl
jq -r '"\(.custom_id): \(.response.body.state), \(.response.body.billing.charged) credits"' results.jsonl
test "$(wc -l < results.jsonl)" = 2
genline batches list
