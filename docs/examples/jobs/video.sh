api() { curl -sS --fail-with-body -H "Authorization: Bearer $GENLINE_API_KEY" "$@"; }
examples=$(dirname "$0")

# Text-to-video: one 4-second clip, 16:9 at 480p and 24 fps, the best of 3 generated (the
# local video providers plant defects in a fifth to three fifths of their clips).
id=$(api -X POST "$GENLINE_API_URL/v1/jobs" -H "Content-Type: application/json" \
  -d @"$examples/text-to-video.json" | jq -r .id)
genline jobs watch "$id" > /dev/null
job=$(api "$GENLINE_API_URL/v1/jobs/$id")
echo "$job" | jq '{state, video, billing: .billing | {reserved, charged},
  clip: .outputs[0] | {media_type, duration_ms, fps, codec, frames, width, height}}'
echo "$job" | jq -e '.state == "succeeded" and .outputs[0].media_type == "video/mp4"' > /dev/null

# The link answers a Range request with 206 Partial Content: a player seeks without
# downloading the whole clip first.
url=$(echo "$job" | jq -r '.outputs[0].url')
test "$(curl -sS -o /dev/null -w '%{http_code}' -r 1000- "$url")" = 206

# Image-to-video from the CLI: a 2-second clip that starts from image 1 of an image job
# you were delivered (--first-frame JOB:N), written into clips/ once its sha256 checks out.
still=$(genline jobs submit "a lighthouse on a cliff above the sea" --wait --json | jq -r .id)
genline jobs submit "the lighthouse beam sweeps through the fog" --video --duration 2 --aspect-ratio 1:1 \
  --resolution 480p --candidates 3 --first-frame "$still:1" --download clips --json > clip.json
jq '{state, template, files, clip: .outputs[0] | {duration_ms, codec}}' clip.json
jq -e '.state == "succeeded" and .template == "image-to-video"' clip.json > /dev/null
test -s "$(jq -r '.files[0]' clip.json)"
