api() { curl -sS --fail-with-body -H "Authorization: Bearer $GENLINE_API_KEY" "$@"; }

# What 2 generic images at the low-cost tier would cost now, and whether you can afford them.
# A quote holds nothing.
api -X POST "$GENLINE_API_URL/v1/quotes" -H "Content-Type: application/json" \
  -d '{"template": "generic", "tier": "low-cost", "images": 2}' > quote.json
jq . quote.json
jq -e '.credits == 2 * .unit_price and .affordable' quote.json > /dev/null

# Your balance: posted credits, those held for jobs in progress, what is available, the grants.
api "$GENLINE_API_URL/v1/account" | jq '{available, posted, pending, retry_tokens, report_policy, grants}'
