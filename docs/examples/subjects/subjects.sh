# Eight photos of one person (here framings of the demo's portrait; use your customer's own).
mkdir -p photos
python - <<'PY'
from genline_stack.portraits import demo_photograph, poses
for i, photo in enumerate(poses(demo_photograph("portrait.jpg"), 8)):
    open(f"photos/ada-{i}.jpg", "wb").write(photo)
PY

# A subject from them: each photo's verdict is printed (accepted, or refused with its reasons).
genline subjects create person "Ada, marketing" photos/*.jpg
id=$(genline subjects list --json | jq -r '.data[0].id')
genline subjects show "$id" --json | jq '{state, photos_accepted, photo_set_sha256}'
test "$(genline subjects show "$id" --json | jq -r .state)" = ready

# An order of two pictures in two of the template's styles, followed to its end.
genline jobs submit "professional headshot" --template subject-headshots --subject "$id" \
  --styles corporate,casual --images 2 --candidates 4 --wait --json > job.json || true
jq '{state, styles, subject: .subject.name, training: .billing.training.state}' job.json
test "$(jq -r '.styles | join(",")' job.json)" = corporate,casual

# Erase it: its photos, embeddings and identities are gone; it answers 410 from now on.
genline subjects delete "$id"
! genline subjects show "$id" 2> gone.txt
grep -q "410" gone.txt
