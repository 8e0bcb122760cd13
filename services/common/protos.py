"""Stubs generated from `proto/` (never copied, never hand-edited).

`make proto` (part of `make install`) builds them into `services/common/_generated`; if they are
missing or older than their .proto, the first import builds them.
"""

import importlib
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto"
GENERATED = Path(__file__).resolve().parent / "_generated"


def proto_files() -> list[Path]:
    return sorted(PROTO_DIR.rglob("*.proto"))


def stale() -> bool:
    """Installed from a wheel there is no proto/ beside the package: the shipped stubs stand."""
    for proto in proto_files():
        stub = GENERATED / proto.relative_to(PROTO_DIR).with_name(proto.stem + "_pb2.py")
        if not stub.exists() or stub.stat().st_mtime < proto.stat().st_mtime:
            return True
    return False


def build() -> None:
    from grpc_tools import protoc

    GENERATED.mkdir(parents=True, exist_ok=True)
    include = str(Path(protoc.__file__).parent / "_proto")
    args = ["protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={GENERATED}", f"--pyi_out={GENERATED}",
            f"--grpc_python_out={GENERATED}", *map(str, proto_files())]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO_DIR}")


def load(package: str) -> tuple[ModuleType, ModuleType]:
    """`load("genline.ledger.v1")` → (messages module, grpc module) of `<package>/<name>.proto`."""
    if stale():
        build()
    if str(GENERATED) not in sys.path:
        sys.path.insert(0, str(GENERATED))
    name = package.split(".")[1]
    return importlib.import_module(f"{package}.{name}_pb2"), importlib.import_module(f"{package}.{name}_pb2_grpc")


if __name__ == "__main__":
    build()
    print(f"built {len(proto_files())} proto file(s) into {GENERATED}")
