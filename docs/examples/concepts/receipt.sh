api() { curl -sS --fail-with-body -H "Authorization: Bearer $GENLINE_API_KEY" "$@"; }

id=$(genline jobs submit "a lantern on a jetty" --tier low-cost --wait --json | jq -r .id)

# The receipt: what was asked (template, profile), produced (outputs, candidates) and charged.
api "$GENLINE_API_URL/v1/jobs/$id/receipt" > receipt.json
jq '.receipt | {sequence, previous_sha256, state, template, profile, images, credits,
  provider_cost_micro_usd: .provider_cost.total_micro_usd, times}' receipt.json
jq -c '.receipt.outputs[], .receipt.candidates[]' receipt.json

# The job names its receipt by hash, the hash the next receipt will name as previous_sha256.
test "$(api "$GENLINE_API_URL/v1/jobs/$id" | jq -r .receipt.sha256)" = "$(jq -r .sha256 receipt.json)"

# And the receipt before it (every one but your first has one) is the one it names.
sequence=$(jq .receipt.sequence receipt.json)
if [ "$sequence" -gt 1 ]; then
  before=$(api "$GENLINE_API_URL/v1/receipts?after=$((sequence - 2))&limit=1" | jq -r '.data[0].sha256')
  test "$before" = "$(jq -r .receipt.previous_sha256 receipt.json)"
fi
