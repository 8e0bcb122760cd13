api() { curl -sS --fail-with-body -H "Authorization: Bearer $GENLINE_API_KEY" "$@"; }

id=$(genline jobs submit "a sailing boat, side view" --tier low-cost --wait --json | jq -r .id)

# Image 1 is not what you needed: report it (within 7 days of delivery, by default).
api -X POST "$GENLINE_API_URL/v1/jobs/$id/outputs/1/report" -H "Content-Type: application/json" \
  -d '{"reason": "the horizon is tilted"}' | jq .

# The ledger decides by your account's policy: a refund of what the image cost, or a retry token.
for _ in $(seq 30); do
  outcome=$(api "$GENLINE_API_URL/v1/jobs/$id" | jq -c '.reports[0] // empty')
  [ -n "$outcome" ] && break
  sleep 1
done
echo "$outcome" | jq .
echo "$outcome" | jq -e '.outcome == "refunded" or .outcome == "retry_token"' > /dev/null

# An image is reported once.
status=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$GENLINE_API_URL/v1/jobs/$id/outputs/1/report" \
  -H "Authorization: Bearer $GENLINE_API_KEY" -H "Content-Type: application/json" -d '{"reason": "again"}')
test "$status" = 409
