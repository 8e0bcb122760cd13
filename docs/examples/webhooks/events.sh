api() { curl -sS --fail-with-body -H "Authorization: Bearer $GENLINE_API_KEY" "$@"; }

# A job to look at, followed to its end.
id=$(genline jobs submit "a quiet harbour" --tier low-cost --wait --json | jq -r .id)

# Its event log, for people: each state and why, each attempt, the credits, the receipt.
genline jobs events "$id"

# The same log over HTTP, a page at a time: the entries after seq 2, three of them.
api "$GENLINE_API_URL/v1/jobs/$id/events?after=2&limit=3" | jq '{next, data: [.data[] | {seq, type}]}'

# Entries are numbered 1, 2, 3 … without gaps; the receipt comes just before the final state.
log=$(api "$GENLINE_API_URL/v1/jobs/$id/events")
echo "$log" | jq -e '[.data[].seq] == [range(1; (.data | length) + 1)]' > /dev/null
echo "$log" | jq -e '.data[-2].type == "receipt.issued" and .data[-1].payload.state == "succeeded"' > /dev/null
