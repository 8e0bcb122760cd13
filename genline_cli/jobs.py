"""`genline jobs …`: a user's commands, on the Python client (genline_client).

`genline jobs submit --video --duration 4 …` asks for clips (MP4) rather than images: made
from the prompt alone (template text-to-video), or from a first frame (image-to-video): a
photo of yours (`--input PATH`, uploaded first) or an image you were delivered
(`--first-frame JOB:N`).

The API's URL and key come from GENLINE_API_URL and GENLINE_API_KEY (or --api-url,
--api-key). With --json a command writes only JSON on stdout (`watch` one event a line);
what is for people (progress, errors) goes to stderr, and `submit --wait --json` writes
each of the job's progress entries there as a JSON line. An error prints the problem's
title and detail, never a traceback.

Exit status: 0 done; 1 the API refused or could not be reached; 2 bad usage or
configuration; 3 the job ended without images (failed, rejected, canceled, expired).
"""

import argparse
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from genline_cli.session import EXIT_NO_IMAGES, EXIT_USAGE, Command, CommandOutput, common_options, with_client
from genline_client import FirstFrame, Genline, Job, JobEvent, Video, verify_receipt
from genline_client import Output as Delivered
from genline_client import Progress as ClientProgress
from genline_client.models import SUCCESSFUL_STATES
from services.common.cli import CommandTree

STAGES = ["submitted", "admitted", "generating", "scoring", "delivering"]  # then a final state
ASPECT_RATIOS = ["16:9", "9:16", "1:1", "4:3", "3:4"]
RESOLUTIONS = ["480p", "720p", "1080p"]
# What a video job is made from when --template does not say: a first frame or the prompt alone.
VIDEO_TEMPLATES = {True: "image-to-video", False: "text-to-video"}
VIDEO_OPTIONS = ("duration", "aspect_ratio", "resolution", "fps", "first_frame")


def run(args: argparse.Namespace) -> int:
    return with_client(args, COMMANDS[args.jobs_command])


def add_commands(tree: CommandTree) -> None:
    add_arguments(tree.command("jobs", run, help="submit jobs and follow them to their images",
                                                 description="Submit jobs and follow them to their images.",
                                                 epilog=__doc__.split("\n\n")[-1],
                                                 formatter_class=argparse.RawDescriptionHelpFormatter))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = common_options()
    commands = parser.add_subparsers(dest="jobs_command", required=True, metavar="COMMAND")

    submit = commands.add_parser("submit", parents=[common], help="submit a job", description="Submit a job.")
    submit.add_argument("prompt")
    submit.add_argument("--images", type=int, default=1, metavar="K", help="images to deliver (default 1)")
    submit.add_argument("--candidates", type=int, metavar="N", help="candidates to generate (N >= K)")
    submit.add_argument("--template", help="generic, headshot, product …; with --video text-to-video or image-to-video"
                                           " (chosen by whether a first frame is given)")
    submit.add_argument("--tier", choices=["stable", "fast", "low-cost"])
    submit.add_argument("--priority", choices=["interactive", "bulk"],
                        help="among your own jobs: interactive ones are served ahead of bulk ones (default interactive)")
    submit.add_argument("--seed", type=int)
    submit.add_argument("--profile", help="scoring profile (the template's by default)")
    submit.add_argument("--deadline", type=int, dest="deadline_s", metavar="SECONDS")
    submit.add_argument("--idempotency-key", help="the same key and request within 24 h return the first job")
    submit.add_argument("--input", type=Path, metavar="PATH",
                        help="a photo to upload as the job's input (with --video: the clip's first frame)")
    submit.add_argument("--subject", metavar="SUBJECT_ID", help="the subject (`genline subjects create`) the job is of,"
                                                                 " with --template subject-headshots or subject-product")
    submit.add_argument("--identity", choices=["auto", "lora", "reference"],
                        help="how the subject's identity is carried (default auto: the cheaper per passing image)")
    submit.add_argument("--styles", type=lambda text: [s for s in text.split(",") if s], metavar="A,B,…",
                        help="the template's styles to spread the images over (default: all of them)")
    add_video_arguments(submit)
    submit.add_argument("--wait", action="store_true", help="follow the job, with live progress, until it is final")
    submit.add_argument("--download", type=Path, metavar="DIR", help="write the images (or clips) into DIR (implies --wait)")
    submit.add_argument("--timeout", type=float, metavar="SECONDS", help="stop waiting after this long")

    listing = commands.add_parser("list", parents=[common], help="your jobs, newest first")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--state")
    listing.add_argument("--template")
    listing.add_argument("--cursor", help="the `next` of the previous page")

    for name, text in [("get", "a job: state, scores, links, billing"), ("cancel", "cancel a job that is not final")]:
        commands.add_parser(name, parents=[common], help=text, description=text).add_argument("job_id", metavar="JOB_ID")
    events = commands.add_parser("events", parents=[common], help="a job's event log")
    events.add_argument("job_id", metavar="JOB_ID")
    events.add_argument("--after", type=int, default=0, metavar="SEQ", help="only entries after this one")
    watch = commands.add_parser("watch", parents=[common], help="follow a job live until it is final")
    watch.add_argument("job_id", metavar="JOB_ID")
    watch.add_argument("--timeout", type=float, metavar="SECONDS")
    receipt = commands.add_parser("receipt", parents=[common], help="a final job's signed receipt, as JSON",
                                  description="Print a final job's signed receipt, as JSON (save it to check it"
                                              " offline with `genline receipts verify`).")
    receipt.add_argument("job_id", metavar="JOB_ID")
    receipt.add_argument("--verify", action="store_true",
                         help="also check it against the platform's published keys (exit 1 if it does not check out)")
    download = commands.add_parser("download", parents=[common], help="write a job's images or clips into a folder")
    download.add_argument("job_id", metavar="JOB_ID")
    download.add_argument("directory", type=Path, metavar="DIR")


def add_video_arguments(submit: argparse.ArgumentParser) -> None:
    video = submit.add_argument_group("clips", "With --video the job delivers K clips (MP4), priced by the second.")
    video.add_argument("--video", action="store_true", help="ask for video clips rather than images")
    video.add_argument("--duration", type=float, metavar="SECONDS", help="each clip's length (needed with --video)")
    video.add_argument("--aspect-ratio", choices=ASPECT_RATIOS, help="the clip's shape (default 16:9)")
    video.add_argument("--resolution", choices=RESOLUTIONS, help="the clip's short side (default 720p)")
    video.add_argument("--fps", type=int, help="frames per second, where the model takes it (default: the model's)")
    video.add_argument("--first-frame", type=first_frame_of, metavar="JOB:N",
                       help="start the clip from image N that job JOB delivered to you")


def first_frame_of(text: str) -> FirstFrame:
    job_id, _, n = text.rpartition(":")
    try:
        return FirstFrame(job_id=job_id, n=int(n))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not JOB:N (a job's id and the number of one of its images)") from None


def video_of(args) -> Video | None:
    """The job's `video` object from the options; ValueError for options that do not make one."""
    if not args.video:
        given = [f"--{name.replace('_', '-')}" for name in VIDEO_OPTIONS if getattr(args, name) is not None]
        if given:
            raise ValueError(f"{', '.join(given)} ask(s) for a clip: add --video")
        return None
    if args.duration is None:
        raise ValueError("--video needs --duration SECONDS")
    if args.first_frame is not None and args.input is not None:
        raise ValueError("a clip starts from one frame: --first-frame or --input, not both")
    shape = {"aspect_ratio": args.aspect_ratio, "resolution": args.resolution, "fps": args.fps}
    return Video(duration_s=args.duration, first_frame=args.first_frame,
                 **{name: value for name, value in shape.items() if value is not None})


def submit(client: Genline, args, *, output: CommandOutput) -> int:
    try:
        video = video_of(args)
        photo = args.input.read_bytes() if args.input is not None else None
    except (ValueError, OSError) as error:
        output.err.print(f"genline: {error}")
        return EXIT_USAGE
    options = {name: getattr(args, name) for name in ("candidates", "tier", "priority", "seed", "profile", "deadline_s",
                                                      "subject", "identity", "styles")}
    if photo is not None:
        upload = client.upload(photo)
        options["input_upload"] = str(upload.id)
        if not output.as_json:
            output.err.print(f"uploaded {args.input} as {upload.id} ({upload.width}x{upload.height})")
    template = args.template or (VIDEO_TEMPLATES[args.input is not None or args.first_frame is not None] if video else None)
    submitted = client.jobs.create(args.prompt, images=args.images, template=template,
                                   idempotency_key=args.idempotency_key, video=video, **options)
    if not (args.wait or args.download):
        if output.as_json:
            output.json(submitted.model_dump(mode="json"))
        else:
            output.out.print(f"{submitted.id}  {submitted.state}")
        return 0
    if not output.as_json:
        output.err.print(f"job {submitted.id} submitted")
    job = follow(client, submitted.id, output=output, timeout=args.timeout)
    return finish(client, job, directory=args.download, output=output)


def follow(client: Genline, job_id, *, output: CommandOutput, timeout: float | None) -> Job:
    """Wait for the job, showing what happens to it as it happens.

    On a terminal a live bar on stderr shows the job's progress (candidates generated,
    scored and passing, images still needed, the ETA) and each other event goes above it as
    a line; elsewhere every event is a line on stdout, a progress entry too. With --json,
    each progress entry is a JSON line on stderr, so that stdout keeps only the job."""
    bar = ProgressBar(output.err, job_id, shown=not output.as_json and output.err.is_terminal)
    with bar.display:
        # On one terminal the lines go above the progress bar, through its console, not across it.
        lines = bar.display.console if bar.display.live.is_started and output.out.is_terminal else output.out

        def show(event: JobEvent) -> None:
            bar.update(event)
            if output.as_json:
                if event.type == "progress":
                    output.err_json(event.model_dump(mode="json"))
            elif event.type != "progress" or not (bar.shown and output.out.is_terminal):
                lines.print(event_line(event), soft_wrap=True)

        return client.jobs.wait(job_id, timeout=timeout, on_event=show)


class ProgressBar:
    """The live bar of a followed job: passing candidates against the images asked for, with
    what was generated and scored, what is still needed, the job's state and the ETA the
    platform gives (until the first progress entry, the stages the job has passed)."""

    def __init__(self, console: Console, job_id, *, shown: bool) -> None:
        self.shown = shown
        self.display = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[counts]}"),
                                TextColumn("{task.fields[state]}"), TextColumn("{task.fields[eta]}"),
                                TimeElapsedColumn(), console=console, transient=True, disable=not shown)
        self.task = self.display.add_task(f"job {str(job_id)[:8]}", total=len(STAGES), counts="", state="submitted",
                                          eta="")
        self.counted = False

    def update(self, event: JobEvent) -> None:
        if (state := event.new_state) is not None:
            self.display.update(self.task, state=state, **({} if self.counted else {"completed": stage_of(state)}))
        elif (progress := event.progress) is not None:
            self.counted = True
            self.display.update(self.task, total=max(progress.images, 1),
                                completed=min(progress.passing, progress.images),
                                counts=progress_counts(progress), eta=eta_text(progress.eta_s))


def progress_counts(progress: ClientProgress) -> str:
    return (f"{progress.generated}/{progress.candidates} generated · {progress.scored} scored"
            f" · {progress.passing}/{progress.images} passing · {progress.needed} needed")


def eta_text(eta_s: float | None) -> str:
    if eta_s is None:
        return "ETA unknown"
    minutes, seconds = divmod(round(eta_s), 60)
    return f"ETA {minutes}:{seconds:02d}" if minutes else f"ETA {seconds} s"


def stage_of(state: str) -> int:
    return STAGES.index(state) if state in STAGES else len(STAGES)


def finish(client: Genline, job: Job, *, directory: Path | None, output: CommandOutput) -> int:
    paths = client.jobs.download(job, directory) if directory and job.outputs else []
    if output.as_json:
        output.json(job.model_dump(mode="json") | ({"files": [str(p) for p in paths]} if directory else {}))
    else:
        show_job(output.out, job)
        for path in paths:
            output.out.print(f"wrote {path}")
    return 0 if job.state in SUCCESSFUL_STATES else EXIT_NO_IMAGES


def event_line(event: JobEvent) -> str:
    when = event.time.strftime("%H:%M:%S") if event.time else "--:--:--"
    if state := event.new_state:
        reason = event.payload.get("reason")
        detail = f"{state}  ({reason})" if reason else state
    elif progress := event.progress:
        previews = ", ".join(f"#{preview.index}" for preview in progress.previews)
        detail = f"{progress_counts(progress)}  {eta_text(progress.eta_s)}" + (f"  passed: {previews}" if previews else "")
    else:
        detail = ", ".join(f"{k}={v}" for k, v in event.payload.items() if not isinstance(v, dict | list))
    return f"{event.seq:>4}  {when}  {event.type:<24} {detail}"


def show_job(console: Console, job: Job) -> None:
    noun = "clips" if job.video or any(output.is_video for output in job.outputs) else "images"
    console.print(f"[bold]{job.id}[/bold]  {job.state}  {job.template}  {len(job.outputs)}/{job.images} {noun}")
    if job.video:
        console.print(f"  clips asked: {clip_asked(job.video)}")
    console.print(f"  prompt: {job.prompt}")
    for state, when in job.history:
        reason = job.reasons.get(state)
        console.print(f"  {when:%Y-%m-%d %H:%M:%S}  {state}" + (f"  ({reason})" if reason else ""))
    if job.subject:
        identity = job.subject.get("identity") or {}
        console.print(f"  subject: {job.subject['name']} ({job.subject['id']}), identity {identity.get('mode') or job.subject['identity_asked']}"
                      + (f" by {identity['provider']} {identity['model']}" if identity.get("provider") else ""))
    if job.failure:
        console.print(f"  failure: {job.failure.code} at {job.failure.stage}: {job.failure.reason}")
    if job.billing:
        console.print(f"  credits: reserved {job.billing.reserved}, charged {job.billing.charged},"
                      f" released {job.billing.released} ({job.billing.state})")
    for delivered in job.outputs:
        console.print(output_line(delivered), soft_wrap=True)
        if delivered.poster_url:
            console.print(f"    poster: {delivered.poster_url}", soft_wrap=True)


def output_line(output: Delivered) -> str:
    """A delivered image, or a clip with its length, codec, rate, size and frame count."""
    if not output.is_video:
        return f"  image {output.n}: {output.url}"
    size = f", {output.width}x{output.height}" if output.width and output.height else ""
    return (f"  clip {output.n}: {output.duration_s:.1f} s, {output.codec or 'unknown codec'}, {output.fps:g} fps{size},"
            f" {output.frames} frames, {round(output.size_bytes / 1024)} KB: {output.url}")


def clip_asked(video: dict) -> str:
    fps = f", {video['fps']} fps" if video.get("fps") else ""
    return f"{video.get('duration_s')} s, {video.get('aspect_ratio')}, {video.get('resolution')}{fps}"


def get(client: Genline, args, *, output: CommandOutput) -> int:
    job = client.jobs.get(args.job_id)
    if output.as_json:
        output.json(job.model_dump(mode="json"))
    else:
        show_job(output.out, job)
    return 0


def cancel(client: Genline, args, *, output: CommandOutput) -> int:
    job = client.jobs.cancel(args.job_id)
    if output.as_json:
        output.json(job.model_dump(mode="json"))
    else:
        output.out.print(f"{job.id}  {job.state}" + ("" if job.final else "  (cancel requested)"))
    return 0


def list_jobs(client: Genline, args, *, output: CommandOutput) -> int:
    page = client.jobs.list(limit=args.limit, cursor=args.cursor, state=args.state, template=args.template)
    if output.as_json:
        output.json(page.model_dump(mode="json"))
        return 0
    table = Table("id", "state", "template", "images", "created")
    for job in page.data:
        table.add_row(str(job.id), job.state, job.template, f"{job.delivered}/{job.images}",
                      f"{job.created_at:%Y-%m-%d %H:%M:%S}")
    output.out.print(table)
    if page.next:
        output.out.print(f"more: --cursor {page.next}")
    return 0


def events(client: Genline, args, *, output: CommandOutput) -> int:
    entries = client.jobs.events(args.job_id, after=args.after)
    if output.as_json:
        output.json([entry.model_dump(mode="json") for entry in entries])
    else:
        for entry in entries:
            output.out.print(event_line(entry))
    return 0


def watch(client: Genline, args, *, output: CommandOutput) -> int:
    if output.as_json:  # one JSON object per event, as it happens
        job = client.jobs.wait(args.job_id, timeout=args.timeout,
                               on_event=lambda event: output.json(event.model_dump(mode="json")))
    else:
        job = follow(client, args.job_id, output=output, timeout=args.timeout)
        output.out.print(f"{job.id}  {job.state}")
    return 0 if job.state in SUCCESSFUL_STATES else EXIT_NO_IMAGES


def download(client: Genline, args, *, output: CommandOutput) -> int:
    paths = client.jobs.download(args.job_id, args.directory)
    if output.as_json:
        output.json([str(p) for p in paths])
    for path in [] if output.as_json else paths:
        output.out.print(f"wrote {path}")
    return 0


def receipt(client: Genline, args, *, output: CommandOutput) -> int:
    document = client.receipt(args.job_id)
    if args.verify:
        body = verify_receipt(document, client.signing_keys())  # ReceiptVerificationError: exit 1
        output.err.print(f"receipt {body['sequence']} of job {body['job_id']}: signature and hash check out"
                         f" (key {document['signature']['kid']})", soft_wrap=True)
    output.json(document)
    return 0


COMMANDS: dict[str, Command] = {
    "submit": submit, "list": list_jobs, "get": get, "cancel": cancel, "events": events, "watch": watch,
    "download": download, "receipt": receipt,
}

