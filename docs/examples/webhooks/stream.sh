# Follow a job live as Server-Sent Events: its log so far, then each entry as it is written.
# (Lines end in CRLF, as SSE allows; tr makes them plain for grep.)
id=$(genline jobs submit "a lighthouse in fog" --tier low-cost --json | jq -r .id)
stream="$GENLINE_API_URL/v1/jobs/$id/stream"
curl -sSN --fail-with-body -H "Authorization: Bearer $GENLINE_API_KEY" "$stream" | tr -d '\r' | tee stream.txt

# The stream ended by itself after the job's final state, its last entry.
grep '^data: ' stream.txt | tail -n 1 | grep -q '"state": "succeeded"'

# A dropped connection resumes after the last id received, each entry exactly once.
curl -sSN --fail-with-body -H "Authorization: Bearer $GENLINE_API_KEY" -H "Last-Event-ID: 3" "$stream" \
  | tr -d '\r' > resumed.txt
grep -m 1 '^id: ' resumed.txt
test "$(grep -m 1 '^id: ' resumed.txt)" = "id: 4"
