# The newest job's signed receipt, checked against the platform's published keys.
id=$(genline jobs list --json | jq -r '.data[0].id')
genline jobs receipt "$id" --verify > receipt.json
jq '.receipt | {sequence, state, images, credits}' receipt.json

# Your plan, its limits, and where you stand against each.
genline usage
