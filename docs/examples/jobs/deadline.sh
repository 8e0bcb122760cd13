api() { curl -sS --fail-with-body -H "Authorization: Bearer $GENLINE_API_KEY" "$@"; }

# At most 90 seconds for this job (a Cancel-After header, or "deadline_s": 90 in the body);
# if only 1 of its 2 images has passed by then, deliver that one rather than nothing.
id=$(api -X POST "$GENLINE_API_URL/v1/jobs" -H "Content-Type: application/json" -H "Cancel-After: 90s" \
  -d '{"prompt": "a harbour at dawn", "images": 2, "min_images": 1, "tier": "low-cost"}' | jq -r .id)
api "$GENLINE_API_URL/v1/jobs/$id" | jq '{deadline_s, min_images}'
test "$(api "$GENLINE_API_URL/v1/jobs/$id" | jq .deadline_s)" = 90

# Without either, the job gets its tier's default deadline.
other=$(genline jobs submit "a harbour at noon" --tier low-cost --json | jq -r .id)
api "$GENLINE_API_URL/v1/jobs/$other" | jq '{tier_default_deadline_s: .deadline_s}'

# Both end well within their deadlines; each is charged only for the images it delivered.
genline jobs watch "$id" > /dev/null
genline jobs watch "$other" > /dev/null
job=$(api "$GENLINE_API_URL/v1/jobs/$id")
echo "$job" | jq '{state, delivered: (.outputs | length), billing}'
echo "$job" | jq -e '.billing.charged == (.outputs | length) * (.billing.reserved / .images)' > /dev/null
