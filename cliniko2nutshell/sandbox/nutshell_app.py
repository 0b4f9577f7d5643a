"""The Nutshell sandbox: one ASGI app serving REST (/rest), JSON-RPC (/api/v1/json), endpoint discovery
(/v1/json), file contents (/file/api/{id}) and the sandbox's own control surface (/_sandbox/...) over one state.

`start_nutshell_sandbox(seed)` runs it on 127.0.0.1 in a background thread and returns where to reach it.
Not served (404 on REST, -32601 on JSON-RPC): leads, products, tasks, audiences, sources and every other family the
migration does not touch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cliniko2nutshell.sandbox.knobs import FaultMiddleware, Knobs, RequestTally, TallyMiddleware, knob_routes
from cliniko2nutshell.sandbox.nutshell_auth import Guard
from cliniko2nutshell.sandbox.nutshell_files import file_routes
from cliniko2nutshell.sandbox.nutshell_rest import rest_routes
from cliniko2nutshell.sandbox.nutshell_rpc import rpc_routes
from cliniko2nutshell.sandbox.nutshell_seed import default_seed
from cliniko2nutshell.sandbox.nutshell_state import NutshellState
from cliniko2nutshell.sandbox.server import ServerThread

__all__ = ["NutshellSandbox", "create_app", "default_seed", "start_nutshell_sandbox"]

DEFAULT_FILE_SIZE_LIMIT = 25 * 2**20  # Unconfirmed: Nutshell documents no limit (reference §11.10); 25 MB is ours.


def create_app(state: NutshellState, knobs: Knobs | None = None, tally: RequestTally | None = None) -> Any:
    """The ASGI app over `state`, wrapped in the knobs' latency/fault middleware and the request tally."""
    knobs = knobs or Knobs()
    tally = tally or RequestTally()
    guard = Guard(state, knobs)

    async def dump(request: Request) -> JSONResponse:
        return JSONResponse(state.dump())

    routes = [
        *rest_routes(state, guard),
        *rpc_routes(state, guard),
        *file_routes(state, guard),
        Route("/_sandbox/state", dump, methods=["GET"]),
        *knob_routes(knobs, on_reset=guard.reset, tally=tally),
    ]
    return TallyMiddleware(
        FaultMiddleware(Starlette(routes=routes), knobs, edit=lambda k: front_desk_edit(state, k)), tally
    )


def front_desk_edit(state: NutshellState, knobs: Knobs) -> str | None:
    """Another user edits a person the API user created (the `edit_every` knob): their description gains a line,
    so a client holding that person's rev or fingerprint meets a record changed under it. Returns its REST id."""
    with state.lock:
        api = state.api_user_id
        created = {e["entity"] for e in state.events if e["kind"] == "contacts" and e["action"] == "create"
                   and e["actor"] == api}  # fmt: skip
        ours = [str(r.id) for r in state.live("contacts") if r.id in created]
        others = [u.id for u in state.records["users"].values() if u.id != api and u.data["is_enabled"]]
        if not ours or not others:
            return None
        rec = state.get_live("contacts", int(knobs.pick(ours)))
        text = (rec.data.get("description") or "").rstrip()
        line = "Front desk: address confirmed by phone."
        state.update(rec, {"description": f"{text}\n{line}".strip()}, others[0])
        return rec.rest_id


@dataclass
class NutshellSandbox:
    rest_url: str  # http://127.0.0.1:<port>/rest
    rpc_url: str  # http://127.0.0.1:<port>/api/v1/json
    discovery_url: str  # http://127.0.0.1:<port>/v1/json
    username: str  # the API user's e-mail
    api_key: str
    knobs: Knobs
    state: NutshellState
    server: ServerThread

    @property
    def base_url(self) -> str:
        return self.server.url

    @property
    def state_url(self) -> str:
        return f"{self.server.url}/_sandbox/state"

    def stop(self) -> None:
        self.server.stop()


def start_nutshell_sandbox(
    seed: dict[str, Any],
    *,
    knobs: Knobs | None = None,
    file_size_limit: int = DEFAULT_FILE_SIZE_LIMIT,
    custom_field_cap: int | None = None,
    port: int = 0,
) -> NutshellSandbox:
    """Seed a state, serve it on 127.0.0.1 (`port` 0: any free one) and return its URLs and credentials.

    `custom_field_cap` (if given) overrides the seed's `custom_field_cap`; None in both means no cap.
    """
    knobs = knobs or Knobs()
    state = NutshellState(seed, custom_field_cap=custom_field_cap, file_size_limit=file_size_limit)
    server = ServerThread(create_app(state, knobs), ports=(port,))
    server.start()
    base = server.url
    return NutshellSandbox(
        rest_url=f"{base}/rest",
        rpc_url=f"{base}/api/v1/json",
        discovery_url=f"{base}/v1/json",
        username=state.api_email,
        api_key=state.api_key,
        knobs=knobs,
        state=state,
        server=server,
    )
