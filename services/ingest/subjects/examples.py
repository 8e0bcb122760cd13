"""Examples of the subjects API's bodies, as the OpenAPI document shows them."""

from pydantic.config import JsonDict

SUBJECT_ID = "3c9e7a52-1f4b-4d8e-a6c2-7b5d9e0f1a2b"
SUBJECT_REQUEST_EXAMPLE: JsonDict = {"kind": "person", "name": "Ada, marketing team",
                                     "uploads": ["5b0e6c1a-7d2f-4e8b-9a3c-1f2e3d4c5b6a"]}
PHOTOS_REQUEST_EXAMPLE: JsonDict = {"photos": ["/9j/4AAQSkZJRgABAQ…"]}
VERDICTS_EXAMPLE = [
    {"n": 1, "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "accepted": True,
     "reasons": [], "checks": [], "identity_distance": 0.21, "near_duplicate_of": None, "source": "uploads[0]",
     "width": 768, "height": 1024, "added_at": "2026-11-26T10:00:00Z"},
    {"n": 2, "sha256": "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752", "accepted": False,
     "reasons": ["another person: identity 0.69 from the subject's other photos; at most 0.6"], "checks": [],
     "identity_distance": 0.69, "near_duplicate_of": None, "source": "photos[0]", "width": 512, "height": 600,
     "added_at": "2026-11-26T10:00:05Z"},
]
SUBJECT_EXAMPLE = {
    "id": SUBJECT_ID, "kind": "person", "name": "Ada, marketing team", "state": "screening", "keep": False,
    "trigger_word": "glqvxmta", "photos_accepted": 1, "photos_refused": 1, "photo_set_sha256": "5e8f…",
    "reason": "", "identity": None, "created_at": "2026-11-26T10:00:00Z", "updated_at": "2026-11-26T10:00:05Z",
    "last_ordered_at": None, "erase_after": "2026-12-26T10:00:00Z", "photos": VERDICTS_EXAMPLE,
    "url": f"/v1/subjects/{SUBJECT_ID}",
}
