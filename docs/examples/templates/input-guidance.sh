api() { curl -sS --fail-with-body -H "Authorization: Bearer $GENLINE_API_KEY" "$@"; }

# A photo without a face (a grey gradient will do), uploaded as a multipart part named "file".
python3 -c 'from PIL import Image; Image.linear_gradient("L").resize((640, 480)).convert("RGB").save("landscape.png")'
upload=$(api -F "file=@landscape.png" "$GENLINE_API_URL/v1/uploads")
echo "$upload" | jq '{id, media_type, width, height}'

# A headshot's input photo is measured before the job is accepted; this one is refused, with
# a sentence per failed check saying what to change. Nothing is held or charged.
body=$(jq -n --arg upload "$(echo "$upload" | jq -r .id)" \
  '{prompt: "a studio headshot", template: "headshot", input_upload: $upload}')
status=$(curl -sS -o refused.json -w '%{http_code}' -X POST "$GENLINE_API_URL/v1/jobs" \
  -H "Authorization: Bearer $GENLINE_API_KEY" -H "Content-Type: application/json" -d "$body")
jq '{status, type, detail, checks}' refused.json
test "$status" = 422
jq -e '.type == "/problems/input-guidance" and .checks[0].dimension == "faces"' refused.json > /dev/null

# A template that starts from a photo refuses a job without one.
status=$(curl -sS -o missing.json -w '%{http_code}' -X POST "$GENLINE_API_URL/v1/jobs" \
  -H "Authorization: Bearer $GENLINE_API_KEY" -H "Content-Type: application/json" \
  -d '{"prompt": "my teapot", "template": "product-cutout"}')
jq '{status, type, detail}' missing.json
test "$status" = 422 && test "$(jq -r .type missing.json)" = /problems/input-required
