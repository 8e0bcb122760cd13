# Submit a job: 2 images, chosen from 4 candidates. The Idempotency-Key makes a retry safe.
job=$(curl -sS -X POST "$GENLINE_API_URL/v1/jobs" \
  -H "Authorization: Bearer $GENLINE_API_KEY" -H "Content-Type: application/json" \
  -H "Idempotency-Key: $(python3 -c 'import uuid; print(uuid.uuid4())')" \
  -d '{"prompt": "a red bicycle against a brick wall", "images": 2, "candidates": 4}')
id=$(echo "$job" | jq -r .id)
echo "submitted $id"

# Follow it until it is final (or use its event stream: see Webhooks and streams).
state=submitted
until [[ "$state" =~ ^(succeeded|partially_succeeded|failed|rejected|canceled|expired)$ ]]; do
  sleep 1
  view=$(curl -sS "$GENLINE_API_URL/v1/jobs/$id" -H "Authorization: Bearer $GENLINE_API_KEY")
  state=$(echo "$view" | jq -r .state)
  echo "  $state"
done

# What was delivered: a signed, expiring link per image, and what it cost.
echo "$view" | jq '{state, outputs: [.outputs[] | {n, url, sha256}], billing}'
curl -sS -o first.png "$(echo "$view" | jq -r '.outputs[0].url')"
echo "$(echo "$view" | jq -r '.outputs[0].sha256')  first.png" | sha256sum --check
