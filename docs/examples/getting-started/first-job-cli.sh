# The same from the command line: live progress, then the files.
genline jobs submit "a red bicycle against a brick wall" --images 2 --wait --download out/
genline jobs list --json | jq -r '.data[0] | "\(.id) \(.state)"'
