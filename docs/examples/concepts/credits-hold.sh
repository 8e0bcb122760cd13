api() { curl -sS --fail-with-body -H "Authorization: Bearer $GENLINE_API_KEY" "$@"; }

# Two images at the low-cost tier: their price is held at admission and settled at the end.
id=$(api -X POST "$GENLINE_API_URL/v1/jobs" -H "Content-Type: application/json" \
  -d '{"prompt": "two kites over a beach", "images": 2, "tier": "low-cost"}' | jq -r .id)
genline jobs watch "$id" > /dev/null

# The money in the job's log: the hold, then the settlement.
genline jobs events "$id" --json | jq -c '.[] | select(.type | startswith("billing.")) | {type, payload}'

# Held = K × unit price; charged = delivered × unit price; released = the rest.
job=$(api "$GENLINE_API_URL/v1/jobs/$id")
echo "$job" | jq '{delivered: (.outputs | length), billing}'
echo "$job" | jq -e '.billing as $b | $b.state == "settled"
  and $b.charged == (.outputs | length) * ($b.reserved / .images) and $b.reserved == $b.charged + $b.released' > /dev/null
