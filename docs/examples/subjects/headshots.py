"""A headshot order with the Python client: a subject made from eight photos of one person (and a
ninth of someone else, refused with its reason), its price with the training line, then six
pictures of that person, one in each style of `subject-headshots`, followed to the end."""

from genline_client import Genline
from genline_stack.portraits import demo_photograph, jpeg, poses

# Your customer's photos: here eight framings of the demo's portrait, and someone else's.
photos = poses(demo_photograph("portrait.jpg"), 8)
someone_else = jpeg(demo_photograph("someone_else.jpg").convert("RGB"))

with Genline() as client:  # GENLINE_API_URL and GENLINE_API_KEY from the environment
    subject = client.subjects.create("person", "Ada, marketing", photos=photos[:4] + [someone_else] + photos[4:])
    for photo in subject.photos:
        print(f"photo {photo.n}: {'accepted' if photo.accepted else 'refused: ' + '; '.join(photo.reasons)}")

    quote = client.quote("subject-headshots", images=6, subject=subject)
    print(f"{quote['credits']} credits for the pictures, {quote['training_credits']} to train the identity")

    submitted = client.jobs.create("professional headshot", template="subject-headshots", subject=subject,
                                   images=6, candidates=12)  # one picture per style, out of twelve candidates
    job = client.jobs.wait(submitted, on_event=lambda event: print(event.seq, event.type))
    receipt = client.receipt(job)["receipt"]

training = job.billing.model_extra["training"]
print(f"job {job.state}: {len(job.outputs)} of {job.images} pictures across {', '.join(job.styles)};"
      f" training line {training['state']} ({training['charged']} charged)")
refused = [photo for photo in subject.photos if not photo.accepted]
assert subject.state == "ready" and subject.photos_accepted == 8
assert [photo.n for photo in refused] == [5] and refused[0].reasons[0].startswith("another person: identity")
assert quote["training_credits"] > 0 and len(job.styles) == 6
assert job.final and job.subject["id"] == str(subject.id) == receipt["subject"]["id"]
assert training["state"] in ("charged", "released")  # settled with the job, never left held
assert "photos" not in receipt["subject"]  # a receipt names the subject and its identity, never a photo
