# curl with your key; --fail-with-body stops on an error answer and prints its problem.
api() { curl -sS --fail-with-body -H "Authorization: Bearer $GENLINE_API_KEY" "$@"; }

# Submit a job, then change your mind at once.
id=$(api -X POST "$GENLINE_API_URL/v1/jobs" -H "Content-Type: application/json" \
  -d '{"prompt": "a lighthouse at dusk", "images": 2, "tier": "low-cost"}' | jq -r .id)
api -X POST "$GENLINE_API_URL/v1/jobs/$id/cancel" | jq '{id, state, cancel_requested_at}'

# Asking again is harmless: 202 again, and nothing more happens.
again=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$GENLINE_API_URL/v1/jobs/$id/cancel" \
  -H "Authorization: Bearer $GENLINE_API_KEY")
test "$again" = 202

# The job ends once the services have stopped working on it.
final='^(succeeded|partially_succeeded|failed|rejected|canceled|expired)$'
until [[ "$(api "$GENLINE_API_URL/v1/jobs/$id" | jq -r .state)" =~ $final ]]; do sleep 1; done
job=$(api "$GENLINE_API_URL/v1/jobs/$id")
echo "$job" | jq '{state, reason: .reasons.canceled, failure, billing}'
test "$(echo "$job" | jq -r .state)" = canceled
test "$(echo "$job" | jq '.billing.charged // 0')" = 0   # nothing delivered, nothing charged

# Canceled jobs are one filter away.
genline jobs list --state canceled --json | jq -e --arg id "$id" '.data | any(.id == $id)' > /dev/null
