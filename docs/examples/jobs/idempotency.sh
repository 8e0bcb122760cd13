api() { curl -sS --fail-with-body -H "Authorization: Bearer $GENLINE_API_KEY" "$@"; }

# One key per job you mean to submit, made before the first try and sent with every retry.
key=$(python3 -c 'import uuid; print(uuid.uuid4())')
submit() { api -X POST "$GENLINE_API_URL/v1/jobs" -H "Content-Type: application/json" -H "Idempotency-Key: $key" "$@"; }

first=$(submit -d '{"prompt": "a red bicycle", "images": 1, "tier": "low-cost", "seed": 7}' | jq -r .id)
# A retry (its answer lost, say): the same request, however it is spaced or ordered, is the first job.
retry=$(submit -d '{ "seed": 7, "tier": "low-cost", "images": 1, "prompt": "a red bicycle" }' | jq -r .id)
echo "first $first, retry $retry"
test "$first" = "$retry"

# Another request under the same key is refused, and nothing is submitted.
status=$(curl -sS -o reused.json -w '%{http_code}' -X POST "$GENLINE_API_URL/v1/jobs" \
  -H "Authorization: Bearer $GENLINE_API_KEY" -H "Content-Type: application/json" -H "Idempotency-Key: $key" \
  -d '{"prompt": "a blue bicycle", "images": 1, "tier": "low-cost", "seed": 7}')
jq '{status, type, detail}' reused.json
test "$status" = 422 && test "$(jq -r .type reused.json)" = /problems/idempotency-key-reused

genline jobs watch "$first" > /dev/null
