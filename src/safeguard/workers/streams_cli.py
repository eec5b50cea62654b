"""``safeguard streams``: watch a stream from the command line, with a live status line.

The command runs a monitor in this process (the same code the API runs) and exits when the stream
is terminated (exit status 3), ends (0) or fails (1); Ctrl-C stops watching (130).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.live import Live
from rich.text import Text

from safeguard.terminal import make_console

if TYPE_CHECKING:
    from safeguard.workers.streams_store import StreamInfo

app = typer.Typer(help="Live streams: watch one, see watched ones.", no_args_is_help=True)
console = make_console(stderr=True)

EXIT = {"terminated": 3, "ended": 0, "stopped": 0, "failed": 1}


def _line(state: StreamInfo, started: float) -> Text:
    colour = {"terminated": "bold red", "failed": "red", "watching": "green", "reconnecting": "yellow"}.get(
        state.status, "white"
    )
    t = Text()
    t.append(f"{state.status:<12}", style=colour)
    lf = state.last_frame_time
    t.append(
        f" frames {state.frames_sampled:>5}  stream time {lf if lf is not None else '-':>7}s"
        f"  findings {len(state.findings or [])}  watched {time.monotonic() - started:6.1f}s"
    )
    if state.error:
        t.append(f"  {state.error[:80]}", style="dim")
    return t


@app.command("watch")
def watch(
    url: Annotated[str, typer.Argument(help="HLS/RTMP URL, or a local video file (played at 1x)")],
    stream_id: Annotated[str, typer.Option(help="the platform's id for the stream")] = "cli",
    user_id: Annotated[str | None, typer.Option(help="the platform's id for the streamer")] = None,
    interval: Annotated[float | None, typer.Option(help="seconds between sampled frames (default 1)")] = None,
    give_up_after: Annotated[float | None, typer.Option(help="seconds without frames before giving up")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the final state as JSON")] = False,
) -> None:
    """Watch one stream until it ends, fails or is terminated."""
    from safeguard.config import Settings
    from safeguard.engine import Engine
    from safeguard.errors import SafeguardError
    from safeguard.workers.streams import StreamConfig, StreamMonitor

    overrides: dict[str, Any] = {"allow_files": True}
    if interval is not None:
        overrides["sample_interval"] = interval
    if give_up_after is not None:
        overrides["give_up_after"] = give_up_after
    engine = Engine(Settings.from_env())
    mon = StreamMonitor(engine, StreamConfig.from_env(**overrides))
    try:
        st = mon.watch(url, platform_stream_id=stream_id, user_id=user_id)
    except SafeguardError as exc:
        console.print(f"[red]error[/red] {exc.code}: {exc.message}")
        raise typer.Exit(2) from None
    started = time.monotonic()
    state = st
    try:
        with Live(_line(state, started), console=console, refresh_per_second=4, transient=False) as live:
            while state.status in ("starting", "watching", "reconnecting"):
                time.sleep(0.25)
                state = mon.get(st.id)
                live.update(_line(state, started))
    except KeyboardInterrupt:
        state = mon.stop(st.id)
        console.print("stopped")
        raise typer.Exit(130) from None
    finally:
        mon.shutdown()
    if as_json:
        print(json.dumps(state.to_dict(), default=str))
    elif state.status == "terminated":
        for f in state.findings:
            console.print(f"  match at {f.get('time_range')}: {f.get('explanation')}")
    raise typer.Exit(EXIT.get(state.status, 1))


@app.command("list")
def list_streams(active: Annotated[bool, typer.Option(help="only streams being watched")] = False) -> None:
    """Streams recorded in the database, newest first."""
    from safeguard.config import Settings
    from safeguard.engine import Engine
    from safeguard.workers.streams import StreamMonitor

    mon = StreamMonitor(Engine(Settings.from_env(), load_indexes=False))
    for s in mon.streams(active_only=active):
        print(json.dumps(s.to_dict(), default=str))
