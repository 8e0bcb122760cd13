"""What the simulated trainers and identity models of identity_apis.py make, so that an order
carried by them is scored as a real one is: a trainer reads the subject's photos from the zip
it is given and makes a LoRA of that face; a LoRA model paints the face its LoRA holds, where
the prompt names the LoRA's trigger word, and a stranger where it does not; a reference model
paints the face in the photo it is given. Each picture is painted into the scene of the style
its prompt names (a template's style, by its words), by the local portrait model's painter.

The LoRA is a real safetensors file (an 8-byte header length, the JSON header, the data) whose
tensor `genline.faces` (U8) holds the face crops the local trainer makes (`LocalWeights`): the
shape of a trained LoRA, values of the simulator's own.
"""

import functools
import hashlib
import io
import json
import zipfile

from services.common.templates import load_catalogue
from services.router.providers.local.portraits.faces import LocalWeights, NoFace, strangers, weights_from_photos
from services.router.providers.local.portraits.painter import Sitting, paint_portrait
from services.router.providers.local.portraits.scene import Look

FACES = "genline.faces"


def lora_file(faces: LocalWeights | None) -> bytes:
    """A LoRA as a trainer outputs it: one LoRA matrix, and the faces it learnt (none: a LoRA of nobody)."""
    packed = faces.pack() if faces is not None else b""
    header: dict[str, object] = {"__metadata__": {"format": "pt"},
                                 "lora_unet_single_blocks_0_linear1.lora_A.weight": {
                                     "dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
    if packed:
        header[FACES] = {"dtype": "U8", "shape": [len(packed)], "data_offsets": [16, 16 + len(packed)]}
    encoded = json.dumps(header).encode()
    return len(encoded).to_bytes(8, "little") + encoded + b"\x00\x00\x80\x3f" * 4 + packed


def faces_of_lora(data: bytes) -> LocalWeights | None:
    """The faces a LoRA holds; None for one that holds none. ValueError: not safetensors."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    entry = header.get(FACES)
    if entry is None:
        return None
    start, end = entry["data_offsets"]
    return LocalWeights.unpack(data[8 + size + start:8 + size + end])


def trained_faces(photos_zip: bytes, trigger_word: str) -> LocalWeights:
    """What a trainer learns of the photos in a zip: their faces. NoFace when none shows one."""
    with zipfile.ZipFile(io.BytesIO(photos_zip)) as archive:
        photos = tuple(archive.read(name) for name in sorted(archive.namelist()) if not name.endswith(".txt"))
    return _faces(photos, trigger_word)


def faces_of_photos(photos: tuple[bytes, ...]) -> LocalWeights:
    """The face a reference model sees in its photos."""
    return _faces(photos, "")


@functools.lru_cache(maxsize=16)
def _faces(photos: tuple[bytes, ...], trigger_word: str) -> LocalWeights:
    return weights_from_photos(list(photos), trigger_word)


def look_of(prompt: str) -> Look:
    """The scene of the template style whose words the prompt carries; a plain one otherwise."""
    for template in load_catalogue().templates.values():
        for style in template.styles or []:
            if style.prompt and style.prompt in prompt:
                return Look.of(dict(style.params))
    return Look.of({})


def portrait(*, faces: LocalWeights | None, prompt: str, size: tuple[int, int], seed: int, n: int) -> bytes:
    """One picture as the model paints it: the faces it was given (the LoRA's only where the prompt
    names its trigger word), a stranger otherwise."""
    shown = faces if faces is not None and faces.trigger_word in prompt else strangers()
    digest = hashlib.sha256(prompt.encode()).digest()
    return paint_portrait(Sitting(weights=shown, look=look_of(prompt), size=size,
                                  draw=(seed % 2**63, n, int.from_bytes(digest[:8], "big"))))


__all__ = ["NoFace", "faces_of_lora", "faces_of_photos", "lora_file", "portrait", "trained_faces"]
