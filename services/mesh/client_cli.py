"""What the CLIs that call a running mesh's services share: where a service listens and how a
reply is printed."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format

from .config import MeshConfig


def message_json(message: Any) -> str:
    """A reply as one line of JSON (the proto field names, every field shown)."""
    return json.dumps(
        json_format.MessageToDict(
            message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
    )


def service_target(data_dir: str, explicit: str, service: str) -> str | None:
    """``service``'s address (a registry name, e.g. "execution"): ``explicit``, else the running
    mesh's from its ``mesh.json`` (None when there is none; a ValueError naming the file when it
    is unusable)."""
    if explicit:
        return explicit
    from .cli import _read_state

    state = _read_state(MeshConfig(data_dir=data_dir))
    if state is None:
        return None
    port = state.get("config", {}).get(f"{service}_port")
    return f"127.0.0.1:{port}" if port else None
