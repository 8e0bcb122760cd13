# Every template: its stages, the photo it needs, its scoring profile, its price per image by tier.
curl -sS --fail-with-body -H "Authorization: Bearer $GENLINE_API_KEY" "$GENLINE_API_URL/v1/templates" > templates.json
jq -r '.templates[] | [.name, .profile, ([.stages[].capability] | join(" > ")),
  (if .input.required then "needs a photo" else "-" end), (.prices | tostring)] | @tsv' templates.json

# studio-headshot starts from your photo, which must show one face.
jq '.templates[] | select(.name == "studio-headshot") | .input' templates.json
jq -e '.templates[] | select(.name == "studio-headshot") | .input.required and (.input.checks | has("faces"))' \
  templates.json > /dev/null
