"""dlib's face-recognition ResNet run by torch: the same 128 numbers as dlib's own
`face_recognition_model_v1`, from the same model file of `face-recognition-models`, about
six times sooner on a CPU core (dlib's wheel multiplies its matrices without a BLAS: some
120 ms a face here, against 18 ms through torch's convolutions), and without holding the
GIL, so the scorer's worker threads embed faces side by side.

The model file is dlib's serialization of the network `dnn_face_recognition_ex.cpp`
declares: a 7×7 convolution of 32 filters at stride 2, a 3×3 max pool at stride 2, then
residual blocks of two 3×3 convolutions each (3 of 32 filters; 4 of 64, 3 of 128, 3 of 256
and 1 of 256, the first of each of those four at stride 2, its shortcut a 2×2 average
pool), a global average pool and a fully connected layer of 128 outputs without bias. Each
convolution is followed by an affine layer (batch normalization folded into a scale and a
shift), folded here into the convolution. dlib's conventions kept: a strided convolution or
pool has no padding, a stride-1 convolution pads by half its size, and a residual sum of
two tensors of different sizes is taken over the larger one with the missing values zero.

What is read from the file is checked against that shape, layer by layer; a file of another
shape raises `UnknownModel`, and `face_models` then embeds with dlib's own code.
"""

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the router's image may come without torch: dlib embeds there
    torch = None  # type: ignore[assignment]

# dlib's input layer for this network: the mean of each channel, then a scale of 1/256.
CHANNEL_MEAN = (122.782, 117.001, 104.298)
INPUT_SCALE = 256.0
CHIP_SIDE = 150
# (filters, residual blocks, whether the first block halves the side), input to output.
LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
STEM_FILTERS, STEM_SIDE = 32, 7
DESCRIPTOR_SIZE = 128


class UnknownModel(ValueError):
    """The model file is not the network this module runs."""


@dataclass(frozen=True, kw_only=True)
class Convolution:
    # (out, in, side, side), the affine layer's scale folded in; stored channels last, as the
    # activations are: oneDNN's convolutions then skip a reordering of every layer's input
    # and output (9 ms a face instead of 11 on one core here; the same descriptors to 1e-6).
    weight: "torch.Tensor"
    bias: "torch.Tensor"  # (out,), the affine layer's shift folded in


@dataclass(frozen=True)
class FaceResNet:
    convolutions: tuple[Convolution, ...]
    projection: "torch.Tensor"  # (256, 128)

    def descriptors(self, chips: np.ndarray) -> np.ndarray:
        """(N, 128) descriptors of N aligned face chips, (N, 150, 150, 3) uint8 RGB. Each chip
        goes through the network alone: a convolution's sums are ordered by the batch it is
        given, and a face's descriptor, so its identity, must not depend on which faces were
        scored beside it (a replayed audit gives the same values)."""
        pixels = torch.from_numpy(np.ascontiguousarray(chips)).permute(0, 3, 1, 2).float()
        mean = torch.tensor(CHANNEL_MEAN).view(1, 3, 1, 1)
        with torch.inference_mode():
            inputs = ((pixels - mean) / INPUT_SCALE).contiguous(memory_format=torch.channels_last)
            return torch.cat([self._forward(inputs[n : n + 1]) for n in range(len(inputs))]).numpy().astype(np.float64)

    def _forward(self, x: "torch.Tensor") -> "torch.Tensor":
        stem, *blocks = self.convolutions
        x = F.max_pool2d(F.relu(F.conv2d(x, stem.weight, stem.bias, stride=2)), 3, 2)
        pairs = iter(zip(blocks[::2], blocks[1::2], strict=True))
        for _, count, halves in LEVELS:
            for index in range(count):
                first, second = next(pairs)
                stride = 2 if halves and index == 0 else 1
                y = F.relu(F.conv2d(x, first.weight, first.bias, stride=stride, padding=0 if stride == 2 else 1))
                y = F.conv2d(y, second.weight, second.bias, padding=1)
                x = F.relu(_zero_padded_sum(y, F.avg_pool2d(x, 2, 2) if stride == 2 else x))
        return x.mean(dim=(2, 3)) @ self.projection


def _zero_padded_sum(a: "torch.Tensor", b: "torch.Tensor") -> "torch.Tensor":
    if a.shape == b.shape:
        return a + b
    shape = [max(sa, sb) for sa, sb in zip(a.shape, b.shape, strict=True)]
    total = a.new_zeros(shape)
    total[:, : a.shape[1], : a.shape[2], : a.shape[3]] += a
    total[:, : b.shape[1], : b.shape[2], : b.shape[3]] += b
    return total


class _Reader:
    """dlib's serialization: integers as a control byte (its low four bits the length, its
    high bit the sign) and that many little-endian bytes; strings as a length and bytes;
    tensors as a version, four dimensions and raw little-endian float32s."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def integer(self) -> int:
        if self.at >= len(self.data):
            raise UnknownModel("the file ends where a number was expected")
        control = self.data[self.at]
        length = control & 0x0F
        value = int.from_bytes(self.data[self.at + 1 : self.at + 1 + length], "little")
        self.at += 1 + length
        return -value if control & 0x80 else value

    def past(self, name: bytes) -> None:
        """Moves past the next serialized string `name` (its length byte and its bytes)."""
        marker = bytes([0x01, len(name)]) + name
        found = self.data.find(marker, self.at)
        if found < 0:
            raise UnknownModel(f"no {name.decode()} layer where one was expected")
        self.at = found + len(marker)

    def tensor(self, *, size: int) -> np.ndarray:
        if (version := self.integer()) != 2:
            raise UnknownModel(f"tensor version {version}, not 2")
        count = int(np.prod([self.integer() for _ in range(4)]))
        if count != size:
            raise UnknownModel(f"a tensor of {count} values where {size} were expected")
        if self.at + 4 * count > len(self.data):
            raise UnknownModel("the file ends inside a tensor")
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.at)
        self.at += 4 * count
        return values.copy()


def _layer_shapes() -> list[tuple[int, int, int]]:
    """(filters, inputs, side) of each convolution, input to output."""
    shapes, inputs = [(STEM_FILTERS, 3, STEM_SIDE)], STEM_FILTERS
    for filters, count, _ in LEVELS:
        for _ in range(count):
            shapes += [(filters, inputs, 3), (filters, filters, 3)]
            inputs = filters
    return shapes


def read(path: Path) -> FaceResNet:
    reader = _Reader(path.read_bytes())
    convolutions = []
    for filters, inputs, side in _layer_shapes():
        reader.past(b"con_4")
        weights = filters * inputs * side * side
        params = reader.tensor(size=weights + filters)
        reader.past(b"affine_")
        scale, shift = np.split(reader.tensor(size=2 * filters), 2)
        weight = params[:weights].reshape(filters, inputs, side, side) * scale[:, None, None, None]
        convolutions.append(Convolution(weight=torch.from_numpy(weight).contiguous(memory_format=torch.channels_last),
                                        bias=torch.from_numpy(params[weights:] * scale + shift)))
    reader.past(b"fc_2")
    outputs, inputs = reader.integer(), reader.integer()
    if (outputs, inputs) != (DESCRIPTOR_SIZE, LEVELS[-1][0]):
        raise UnknownModel(f"a fully connected layer of {inputs} to {outputs}")
    projection = reader.tensor(size=inputs * outputs).reshape(inputs, outputs)
    return FaceResNet(tuple(convolutions), torch.from_numpy(projection))


_loading = threading.Lock()
_loaded: dict[Path, FaceResNet | None] = {}


def loaded(path: Path) -> FaceResNet | None:
    """The network in `path`, read once a process (its tensors are only read, so threads
    share it); None without torch or when the file is not this network."""
    if torch is None:
        return None
    with _loading:
        if path not in _loaded:
            try:
                _loaded[path] = read(path)
            except UnknownModel:
                _loaded[path] = None
        return _loaded[path]
