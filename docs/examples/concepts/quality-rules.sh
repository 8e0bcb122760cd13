api() { curl -sS --fail-with-body -H "Authorization: Bearer $GENLINE_API_KEY" "$@"; }

# The generic profile, stricter on sharpness (80 rather than 20), and no faces at all.
id=$(api -X POST "$GENLINE_API_URL/v1/jobs" -H "Content-Type: application/json" -d '{
  "prompt": "a red bicycle against a brick wall", "images": 1, "candidates": 3, "tier": "low-cost",
  "quality": {"thresholds": {"sharpness": {"min": 80}}, "forbid": [{"dimension": "faces", "min": 1}]}}' | jq -r .id)
genline jobs watch "$id" > /dev/null

job=$(api "$GENLINE_API_URL/v1/jobs/$id")
echo "$job" | jq '{state, scoring_profile, quality, profile_version}'
echo "$job" | jq -c '.scores[] | {index, passed, failed,
  sharpness: .dimensions.sharpness | {value, threshold}, no_faces: .dimensions["forbid:faces>=1"].reason}'
echo "$job" | jq -e '[.scores[].dimensions.sharpness | select(.value != null) | .threshold] | all(. == 80)' > /dev/null

# Rules are checked at submission: an unknown dimension is refused, naming the field.
status=$(curl -sS -o refused.json -w '%{http_code}' -X POST "$GENLINE_API_URL/v1/jobs" \
  -H "Authorization: Bearer $GENLINE_API_KEY" -H "Content-Type: application/json" \
  -d '{"prompt": "a red bicycle", "quality": {"thresholds": {"sharpnes": {"min": 80}}}}')
jq '{status, type, errors}' refused.json
test "$status" = 422
