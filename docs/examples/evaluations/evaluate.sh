api() { curl -sS --fail-with-body -H "Authorization: Bearer $GENLINE_API_KEY" "$@"; }

# A photo of yours, as an upload (or give {"url": "https://…"} or {"b64": "…"} in the request).
python3 -c 'from PIL import Image; Image.new("RGB", (256, 256), (40, 40, 40)).save("dark.png")'
upload=$(api -X POST "$GENLINE_API_URL/v1/uploads" -H "Content-Type: image/png" --data-binary @dark.png | jq -r .id)

api -X POST "$GENLINE_API_URL/v1/evaluations" -H "Content-Type: application/json" \
  -d "{\"images\": [{\"upload_id\": \"$upload\"}], \"template\": \"generic\"}" > verdict.json
jq '{passed: .images[0].passed, failed: .images[0].failed, charge}' verdict.json
test "$(jq -r '.images[0].passed' verdict.json)" = false

genline evaluate dark.png || test $? = 3   # exit status 3: an image did not pass
