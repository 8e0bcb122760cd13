api() { curl -sS --fail-with-body -H "Authorization: Bearer $GENLINE_API_KEY" "$@"; }

# A finished job whose prompt and images should not be kept.
id=$(genline jobs submit "a portrait of my neighbour's cat" --tier low-cost --wait --json | jq -r .id)
link=$(api "$GENLINE_API_URL/v1/jobs/$id" | jq -r '.outputs[0].url')

api -X DELETE "$GENLINE_API_URL/v1/jobs/$id" | jq .   # 202: {"id": …, "state": "erasing"}

# From now on the job answers 410 Gone, and no listing shows it.
status=$(curl -sS -o gone.json -w '%{http_code}' -H "Authorization: Bearer $GENLINE_API_KEY" \
  "$GENLINE_API_URL/v1/jobs/$id")
jq '{status, type, detail}' gone.json
test "$status" = 410 && test "$(jq -r .type gone.json)" = /problems/job-erased
genline jobs list --json | jq -e --arg id "$id" 'all(.data[]; .id != $id)' > /dev/null

# The images are deleted in the background: within moments the old link finds nothing.
for _ in $(seq 60); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$link")
  [ "$code" != 200 ] && break
  sleep 1
done
echo "the delivered image's link now answers $code"
test "$code" != 200

# The receipt stays (it never held the prompt) and still verifies.
api "$GENLINE_API_URL/v1/jobs/$id/receipt" > receipt.json
curl -sS --fail-with-body "$GENLINE_API_URL/.well-known/genline-keys.json" > genline-keys.json
genline receipts verify receipt.json --keys genline-keys.json
jq '.receipt | {state, images, credits}' receipt.json
