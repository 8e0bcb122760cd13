# Each service's topic as its journal sees it: where each partition's records begin and end,
# how far behind each reading group is, and the journal's rows still to publish.
genline bus status

# The same as JSON, for scripts: one line per topic, and the most any group is behind.
genline bus status --json > bus.json
jq -r '.[] | "\(.topic): \(.journal.rows) rows kept, \(.journal.unpublished) to publish, floor \(.journal.floor)"' bus.json
jq -r '[.[].partitions[].behind[]] | "most behind: \(max // 0) records"' bus.json
jq -e 'length > 0' bus.json > /dev/null     # at least one service's journal
