# Save what checking needs: the published keys (no API key needed) and your receipts.
genline jobs submit "a windmill at sunset" --tier low-cost --wait > /dev/null
curl -sS --fail-with-body "$GENLINE_API_URL/.well-known/genline-keys.json" > genline-keys.json
curl -sS --fail-with-body -H "Authorization: Bearer $GENLINE_API_KEY" \
  "$GENLINE_API_URL/v1/receipts?after=0&limit=500" > receipts.json

# Offline from here on: every signature, every hash, every link of the chain.
genline receipts verify receipts.json --keys genline-keys.json

# Remember where the chain ends, to check only what comes after it next time.
last=$(jq '.data[-1].receipt.sequence' receipts.json)
head=$(jq -r '.data[-1].sha256' receipts.json)

# Later: a new job, and only the receipts after the last one checked. --previous makes sure
# they continue the very chain checked before. (The keys document only grows: fetch it again.)
genline jobs submit "a windmill at night" --tier low-cost --wait > /dev/null
curl -sS --fail-with-body "$GENLINE_API_URL/.well-known/genline-keys.json" > genline-keys.json
curl -sS --fail-with-body -H "Authorization: Bearer $GENLINE_API_KEY" \
  "$GENLINE_API_URL/v1/receipts?after=$last" > newer.json
jq -e '.data | length >= 1' newer.json > /dev/null
python3 -m genline_client.receipts verify newer.json --keys genline-keys.json --previous "$head"
