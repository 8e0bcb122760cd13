# A key that may only read jobs, made by a key holding keys:manage; refused where it lacks
# the scope, and refused everywhere once revoked.
api=$GENLINE_API_URL
key=$(curl -sS -X POST "$api/v1/api-keys" -H "Authorization: Bearer $GENLINE_API_KEY" \
  -H 'Content-Type: application/json' -d '{"name": "dashboard", "scopes": ["jobs:read"]}')
id=$(echo "$key" | jq -r .id)
reader=$(echo "$key" | jq -r .secret)          # shown this once; the platform keeps only its hash
echo "$key" | jq '{id, prefix, scopes}'

# It lists jobs; submitting one is 403 missing-scope, naming the scope it lacks.
test "$(curl -sS -o /dev/null -w '%{http_code}' "$api/v1/jobs" -H "Authorization: Bearer $reader")" = 200
status=$(curl -sS -o refused.json -w '%{http_code}' -X POST "$api/v1/jobs" -H "Authorization: Bearer $reader" \
  -H 'Content-Type: application/json' -d '{"prompt": "a red bicycle", "images": 1}')
test "$status" = 403
jq -e '.type == "/problems/missing-scope" and .scope == "jobs:write"' refused.json

# Revoked: 204, and from the next request on, on every replica, 401.
test "$(curl -sS -o /dev/null -w '%{http_code}' -X DELETE "$api/v1/api-keys/$id" \
  -H "Authorization: Bearer $GENLINE_API_KEY")" = 204
test "$(curl -sS -o /dev/null -w '%{http_code}' "$api/v1/jobs" -H "Authorization: Bearer $reader")" = 401
echo "scoped key $id made, refused a submission, and revoked"
